"""Base classes and small types shared by every document Tessera validates (config files and API bodies)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from tessera.durations import parse_duration
from tessera.errors import FieldIssue, InvalidInput


class StrictModel(BaseModel):
    """Unknown keys are errors, never silently dropped: a typo must not change what the system does."""

    model_config = ConfigDict(extra="forbid", frozen=False)


Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", strict=True)]
"""A product, group or module code: letters, digits, `.`, `_`, `-`; at most 64 characters."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$", strict=True)]
"""A machine name such as a field name: lower-case letters, digits and `_`, starting with a letter."""

LanguageTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]


def _non_empty_text(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError("give the text in at least one language, e.g. {en: ...}")
    for tag, text in value.items():
        if not text.strip():
            raise ValueError(f"the {tag!r} text is empty")
    return value


LocalizedText = Annotated[dict[LanguageTag, str], AfterValidator(_non_empty_text)]
"""Text in several languages: `{en: "CAD Suite", de: "CAD-Suite"}`."""


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


IsoDurationText = Annotated[str, AfterValidator(_check_duration)]


M = TypeVar("M", bound=BaseModel)


def validate_input(model: type[M], data: object) -> M:
    """Validate data assembled by a service (e.g. a merged PATCH) and report problems like request errors."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [
            FieldIssue(
                ".".join(str(part) for part in error["loc"]) or "(body)",
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]
        raise InvalidInput(issues[0].message, issues=issues) from None
