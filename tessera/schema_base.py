"""Base classes and small types shared by every document Tessera validates (config files and API bodies)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from tessera.durations import parse_duration
from tessera.errors import FieldIssue, InvalidInput


class StrictModel(BaseModel):
    """Unknown keys are errors, never silently dropped: a typo must not change what the system does.

    Text in any field (keys and values, at any depth) must not hold NUL, control characters other than tab and
    line breaks, bidirectional overrides and isolates, or lone surrogates: they hide what a text really says (a
    name that reads differently than it compares) and break the systems the text is handed on to.
    """

    model_config = ConfigDict(extra="forbid", frozen=False)

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, value: Any) -> Any:
        check_clean_text(value)
        return value


# Bidi embeddings, overrides and isolates; plain left-to-right / right-to-left marks are harmless and kept.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def unclean_character(text: str) -> str | None:
    """The first character a text must not hold, or None."""
    if text.isascii() and text.isprintable():
        return None  # the common case, at C speed: no control character, surrogate or bidi control in it
    for char in text:
        if char in _ALLOWED_CONTROLS:
            continue
        # Cs: a lone surrogate is no character at all, and no database or encoder accepts one.
        if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs"):
            return char
    return None


def check_clean_text(value: Any) -> None:
    """ValueError naming the character when `value`, or any text inside it, holds one that is refused."""
    if isinstance(value, str):
        bad = unclean_character(value)
        if bad is not None:
            what = unicodedata.name(
                bad, "a control character" if unicodedata.category(bad) == "Cc" else "a lone surrogate"
            )
            raise ValueError(f"must not contain U+{ord(bad):04X} ({what})")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_clean_text(key)
            check_clean_text(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_clean_text(item)


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
                ".".join(str(part) for part in key_path(data, error["loc"])) or "(body)",
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]
        issues = one_per_field(issues)
        raise InvalidInput(issues[0].message, issues=issues) from None


# --- pydantic error locations as the author of the input sees them -----------------------------------------

PathPart = str | int


def key_path(data: Any, loc: Sequence[PathPart]) -> list[PathPart]:
    """The parts of a pydantic location that are keys or indexes of `data`, the input that was validated.

    pydantic also puts the names of union members (`default.int`) and validators (`function-after[...]`) into
    locations; they are not keys, and a path that names them matches nothing the author wrote. A last part
    that is not in the input is kept when it can be a key: a missing one, or a default that was checked.
    """
    path: list[PathPart] = []
    node = data
    for at, part in enumerate(loc):
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            node = node[part]
        elif not (isinstance(node, dict) and at == len(loc) - 1 and not _is_tag(part)):
            continue
        path.append(part)
    return path


def _is_tag(part: PathPart) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def one_per_field(issues: list[FieldIssue]) -> list[FieldIssue]:
    """Merge issues on the same field: a value that fits no member of a union fails once per member."""
    grouped: dict[str, list[FieldIssue]] = {}
    for issue in issues:
        grouped.setdefault(issue.field, []).append(issue)
    return [replace(group[0], message=_either([issue.message for issue in group])) for group in grouped.values()]


def _either(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    prefix = "Input should be "
    if len(unique) == 1 or not all(message.startswith(prefix) for message in unique):
        return "; ".join(unique)
    # "Input should be a valid integer, unable to parse ..." -> "a valid integer"
    options = [message.removeprefix(prefix).split(", ")[0] for message in unique]
    return prefix + ", ".join(options[:-1]) + " or " + options[-1]
