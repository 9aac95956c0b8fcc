"""Typed parameters asked at license creation (product fields) and on customer records (customer fields).

One schema for both (docs/domain.md); `coerce_value` checks a value given later (by an order or an API
caller) against its specification.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, cast

from pydantic import Field, ValidationInfo, field_validator

from tessera.schema_base import Identifier, LocalizedText, StrictModel

FieldValue = bool | int | str | date

MAX_TEXT_LENGTH = 1000
"""The longest value a string field takes (a field's `max_length` may say less): values travel in workflow inputs."""
MAX_FIELD_VALUES = 100
"""The most field values one order or record may carry."""


class FieldType(StrEnum):
    int = "int"
    string = "string"
    bool = "bool"
    date = "date"
    choice = "choice"


class FieldSpec(StrictModel):
    """One typed parameter. Keys are validated in declaration order, so later checks see earlier keys."""

    name: Identifier
    label: LocalizedText
    type: FieldType
    required: bool = False
    allowed: list[bool | int | str | date] | None = Field(default=None, validate_default=True)
    min: int | date | None = None
    max: int | date | None = None
    max_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TEXT_LENGTH,
        description=f"String fields: at most this many characters (≤ {MAX_TEXT_LENGTH}).",
    )
    default: bool | int | str | date | None = None

    @field_validator("allowed")
    @classmethod
    def _allowed_fits_type(cls, allowed: list[FieldValue] | None, info: ValidationInfo) -> list[FieldValue] | None:
        kind = info.data.get("type")
        if kind is None:
            return allowed
        if kind == FieldType.choice:
            if not allowed:
                raise ValueError("a choice field needs a non-empty list of allowed values")
            if len(set(map(repr, allowed))) != len(allowed):
                raise ValueError("allowed values must not repeat")
            return allowed
        if allowed is None:
            return None
        # Canonical types, so that dates written as strings (JSON, or a stored product read back) still match.
        return [_check_plain_type(kind, value) for value in allowed]

    @field_validator("min", "max")
    @classmethod
    def _bounds_fit_type(cls, bound: int | date | None, info: ValidationInfo) -> int | date | None:
        kind = info.data.get("type")
        if bound is None or kind is None:
            return bound
        if kind not in (FieldType.int, FieldType.date):
            raise ValueError(f"only int and date fields have {info.field_name}; this field is {kind}")
        _check_plain_type(kind, bound)
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and type(low) is type(bound) and low > bound:  # type: ignore[operator]
            raise ValueError(f"max ({bound}) is smaller than min ({low})")
        return bound

    @field_validator("max_length")
    @classmethod
    def _length_of_strings(cls, length: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if length is not None and kind is not None and kind != FieldType.string:
            raise ValueError(f"only string fields have max_length; this field is {kind}")
        return length

    @field_validator("default")
    @classmethod
    def _default_is_valid(cls, default: FieldValue | None, info: ValidationInfo) -> FieldValue | None:
        if default is None or info.data.get("type") is None:
            return default
        spec = FieldSpec.model_construct(**{**info.data, "default": None})
        return coerce_value(spec, default)


def _check_plain_type(kind: FieldType, value: Any) -> FieldValue:
    expected: dict[FieldType, type] = {
        FieldType.int: int,
        FieldType.string: str,
        FieldType.bool: bool,
        FieldType.date: date,
    }
    if kind == FieldType.date and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    wanted = expected[kind]
    # bool is an int in Python; a field of type int must not accept `true`.
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ValueError(f"{_show(value)} is not of type {kind.value}")
    return cast(FieldValue, value)


def _show(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else repr(value)


def coerce_value(spec: FieldSpec, value: Any) -> FieldValue:
    """Check `value` against `spec`; return it in its canonical type or raise ValueError saying why."""
    if spec.type == FieldType.choice:
        allowed = spec.allowed or []
        # Compare with the type too: `true == 1` in Python, but `true` is not the choice `1`.
        for item in allowed:
            if type(value) is type(item) and value == item:
                return item
        shown = ", ".join(_show(item) for item in allowed)
        raise ValueError(f"{_show(value)} is not among the allowed values: {shown}")
    checked = _check_plain_type(spec.type, value)
    if isinstance(checked, str):
        longest = spec.max_length or MAX_TEXT_LENGTH
        if len(checked) > longest:
            raise ValueError(f"is {len(checked)} characters long; at most {longest} are allowed")
    if spec.allowed is not None and checked not in spec.allowed:
        shown = ", ".join(_show(item) for item in spec.allowed)
        raise ValueError(f"{_show(checked)} is not among the allowed values: {shown}")
    if spec.min is not None and checked < spec.min:  # type: ignore[operator]
        raise ValueError(f"{_show(checked)} is below the minimum {_show(spec.min)}")
    if spec.max is not None and checked > spec.max:  # type: ignore[operator]
        raise ValueError(f"{_show(checked)} is above the maximum {_show(spec.max)}")
    return checked


def unique_names(specs: list[FieldSpec]) -> list[tuple[int, str]]:
    """(index, message) for each field whose name repeats an earlier one."""
    seen: set[str] = set()
    problems = []
    for index, spec in enumerate(specs):
        if spec.name in seen:
            problems.append((index, f"field name {spec.name!r} is used twice"))
        seen.add(spec.name)
    return problems
