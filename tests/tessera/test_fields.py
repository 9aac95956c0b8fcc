"""Typed fields (product and customer fields): what a specification accepts, and values checked against it."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tessera.fields import FieldSpec, FieldType, coerce_value, unique_names


def spec(type_: str, **keys: Any) -> FieldSpec:
    return FieldSpec.model_validate({"name": "f", "label": {"en": "F"}, "type": type_, **keys})


def refusal(type_: str, **keys: Any) -> tuple[str, str]:
    """(field, message) of the one error a specification gets."""
    with pytest.raises(ValidationError) as caught:
        spec(type_, **keys)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return ".".join(map(str, errors[0]["loc"])), str(errors[0]["msg"]).removeprefix("Value error, ")


@pytest.mark.parametrize(
    ("type_", "keys", "default"),
    [
        ("int", {"min": 1, "max": 10}, 5),
        ("string", {"allowed": ["a", "b"]}, "b"),
        ("bool", {}, False),
        ("date", {"min": "2024-01-01"}, date(2024, 6, 30)),
        ("choice", {"allowed": [5, 30, 60, 90]}, 30),
    ],
)
def test_every_type_takes_a_fitting_default(type_: str, keys: dict[str, Any], default: object) -> None:
    field = spec(type_, default=default, **keys)
    assert field.type == FieldType(type_)
    assert field.default == default
    assert type(field.default) is type(default)


def test_a_date_default_written_as_text_becomes_a_date() -> None:
    assert spec("date", default="2024-02-29").default == date(2024, 2, 29)


@pytest.mark.parametrize(
    ("type_", "default", "message"),
    [
        ("int", "5", "'5' is not of type int"),
        ("int", True, "True is not of type int"),
        ("bool", 1, "1 is not of type bool"),
        ("string", 5, "5 is not of type string"),
        ("date", "2024-02-30", "'2024-02-30' is not a date (YYYY-MM-DD)"),
        ("date", 20240101, "20240101 is not of type date"),
    ],
)
def test_default_must_have_the_fields_type(type_: str, default: object, message: str) -> None:
    assert refusal(type_, default=default) == ("default", message)


def test_default_must_be_allowed() -> None:
    assert refusal("int", allowed=[1, 2], default=3) == ("default", "3 is not among the allowed values: 1, 2")
    assert refusal("choice", allowed=[5, 30], default=31) == ("default", "31 is not among the allowed values: 5, 30")


def test_a_choice_compares_types_too() -> None:
    """`true == 1` and `"30" != 30` in Python; neither is the choice the analyst wrote."""
    assert refusal("choice", allowed=[5, 30], default="30") == (
        "default",
        "'30' is not among the allowed values: 5, 30",
    )
    assert refusal("choice", allowed=[1, 2], default=True)[0] == "default"
    both = spec("choice", allowed=[1, True])
    assert coerce_value(both, True) is True
    assert coerce_value(both, 1) == 1
    assert type(coerce_value(both, 1)) is int


def test_default_must_lie_within_min_and_max() -> None:
    assert refusal("int", min=1, max=10, default=0) == ("default", "0 is below the minimum 1")
    assert refusal("int", min=1, max=10, default=11) == ("default", "11 is above the maximum 10")
    assert refusal("date", min="2024-02-01", default="2024-01-31") == (
        "default",
        "2024-01-31 is below the minimum 2024-02-01",
    )


def test_min_above_max_is_refused_at_max() -> None:
    assert refusal("int", min=60, max=50) == ("max", "max (50) is smaller than min (60)")
    assert refusal("date", min="2024-05-01", max="2024-01-01") == (
        "max",
        "max (2024-01-01) is smaller than min (2024-05-01)",
    )
    assert spec("int", min=5, max=5).max == 5


@pytest.mark.parametrize("type_", ["string", "bool", "choice"])
def test_only_int_and_date_fields_have_bounds(type_: str) -> None:
    keys: dict[str, Any] = {"allowed": ["a"]} if type_ == "choice" else {}
    assert refusal(type_, min=1, **keys) == ("min", f"only int and date fields have min; this field is {type_}")


def test_bounds_must_have_the_fields_type() -> None:
    assert refusal("date", max=3) == ("max", "3 is not of type date")
    assert refusal("int", min="2024-01-01") == ("min", "2024-01-01 is not of type int")


@pytest.mark.parametrize("allowed", [None, []])
def test_a_choice_needs_allowed_values(allowed: list[object] | None) -> None:
    keys = {} if allowed is None else {"allowed": allowed}
    assert refusal("choice", **keys) == ("allowed", "a choice field needs a non-empty list of allowed values")


def test_allowed_values_do_not_repeat_and_fit_the_type() -> None:
    assert refusal("choice", allowed=[5, 30, 5]) == ("allowed", "allowed values must not repeat")
    assert refusal("int", allowed=[1, "x"]) == ("allowed", "'x' is not of type int")
    assert refusal("int", allowed=[1, False]) == ("allowed", "False is not of type int")


def test_unknown_keys_and_types_are_refused() -> None:
    assert refusal("int", colour="red") == ("colour", "Extra inputs are not permitted")
    assert refusal("float")[0] == "type"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (spec("int"), 7, 7),
        (spec("string"), "x", "x"),
        (spec("bool"), True, True),
        (spec("date"), "2024-02-29", date(2024, 2, 29)),
        (spec("date"), date(2024, 2, 29), date(2024, 2, 29)),
        (spec("choice", allowed=["a", "b"]), "b", "b"),
    ],
)
def test_coerce_value_returns_the_canonical_value(field: FieldSpec, value: object, expected: object) -> None:
    assert coerce_value(field, value) == expected
    assert type(coerce_value(field, value)) is type(expected)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (spec("int"), False, "False is not of type int"),
        (spec("int"), 1.0, "1.0 is not of type int"),
        (spec("bool"), 0, "0 is not of type bool"),
        (spec("string"), None, "None is not of type string"),
        (spec("date"), "tomorrow", "'tomorrow' is not a date (YYYY-MM-DD)"),
        (spec("int", allowed=[1, 2]), 3, "3 is not among the allowed values: 1, 2"),
        (spec("choice", allowed=[5, 30]), "5", "'5' is not among the allowed values: 5, 30"),
        (spec("date", max="2024-12-31"), "2025-01-01", "2025-01-01 is above the maximum 2024-12-31"),
    ],
)
def test_coerce_value_refuses_with_a_reason(field: FieldSpec, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        coerce_value(field, value)


def test_allowed_dates_match_however_they_were_written() -> None:
    """Dates come as text from JSON and from a stored product read back; they must still match."""
    from_text = spec("date", allowed=["2024-01-01", "2024-07-01"])
    assert coerce_value(from_text, date(2024, 7, 1)) == date(2024, 7, 1)
    assert coerce_value(from_text, "2024-01-01") == date(2024, 1, 1)
    from_yaml = spec("date", allowed=[date(2024, 1, 1)], default=date(2024, 1, 1))
    stored = FieldSpec.model_validate(from_yaml.model_dump(mode="json"))
    assert stored == from_yaml
    assert coerce_value(stored, "2024-01-01") == date(2024, 1, 1)


@given(low=st.integers(-1000, 1000), high=st.integers(-1000, 1000), value=st.integers(-1100, 1100))
def test_an_int_value_is_accepted_exactly_within_its_bounds(low: int, high: int, value: int) -> None:
    if low > high:
        low, high = high, low
    field = spec("int", min=low, max=high)
    if low <= value <= high:
        assert coerce_value(field, value) == value
    else:
        with pytest.raises(ValueError, match="minimum" if value < low else "maximum"):
            coerce_value(field, value)


def test_unique_names_points_at_each_repeat() -> None:
    fields = [spec("int"), spec("string").model_copy(update={"name": "g"}), spec("bool")]
    assert unique_names(fields) == [(2, "field name 'f' is used twice")]


def test_string_values_are_bounded_by_max_length_or_the_global_limit() -> None:
    from tessera.fields import MAX_TEXT_LENGTH

    assert coerce_value(spec("string"), "x" * MAX_TEXT_LENGTH) == "x" * MAX_TEXT_LENGTH
    with pytest.raises(ValueError, match=f"at most {MAX_TEXT_LENGTH}"):
        coerce_value(spec("string"), "x" * (MAX_TEXT_LENGTH + 1))
    short = spec("string", max_length=3)
    assert coerce_value(short, "abc") == "abc"
    with pytest.raises(ValueError, match="at most 3"):
        coerce_value(short, "abcd")
    assert refusal("string", max_length=3, default="abcd")[0] == "default"
    assert refusal("string", max_length=MAX_TEXT_LENGTH + 1)[0] == "max_length"
    assert refusal("int", max_length=3) == ("max_length", "only string fields have max_length; this field is int")
