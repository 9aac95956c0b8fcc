"""ISO 8601 durations as analysts write them; calendar units stay apart from day counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.durations import Duration, parse_duration


def iso(duration: Duration) -> str:
    """The shortest ISO 8601 text for `duration` (the test's own formatter, independent of the parser)."""
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    day_part = "".join(
        f"{n}{unit}" for n, unit in ((duration.years, "Y"), (duration.months, "M"), (duration.days, "D")) if n
    )
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    text = "P" + day_part + (f"T{time_part}" if time_part else "")
    return "P0D" if text == "P" else text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1Y", Duration(years=1)),
        ("P1M", Duration(months=1)),
        ("P30D", Duration(days=30)),
        ("P365D", Duration(days=365)),
        ("P2W", Duration(days=14)),
        ("P1W3D", Duration(days=10)),
        ("PT48H", Duration(seconds=48 * 3600)),
        ("PT1M", Duration(seconds=60)),
        ("P1Y2M3DT4H5M6S", Duration(years=1, months=2, days=3, seconds=4 * 3600 + 5 * 60 + 6)),
        ("P0D", Duration()),
        (" p1y ", Duration(years=1)),
    ],
)
def test_valid_forms(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "1Y", "P1", "P1.5Y", "P-1D", "P1YT", "P1D1Y", "PT1D", "P1H", "P1Y 2M", "1 year", "P1YX"],
)
def test_invalid_forms_are_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an ISO 8601 duration \(examples: P1Y, P1M, P30D, PT48H\)"):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 5, ["P1Y"]])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_a_month_is_not_thirty_days() -> None:
    month, thirty_days = parse_duration("P1M"), parse_duration("P30D")
    assert month != thirty_days
    assert month.has_calendar_part
    assert not thirty_days.has_calendar_part
    assert len({parse_duration("P1Y"), parse_duration("P12M"), parse_duration("P365D")}) == 3


def test_only_durations_without_calendar_part_have_a_fixed_length() -> None:
    assert parse_duration("P30DT12H").to_timedelta() == timedelta(days=30, hours=12)
    for text in ("P1M", "P1Y"):
        with pytest.raises(ValueError, match="no fixed length"):
            parse_duration(text).to_timedelta()


def test_zero() -> None:
    assert parse_duration("P0D").is_zero
    assert parse_duration("PT0S").is_zero
    assert not parse_duration("PT1S").is_zero


durations = st.builds(
    Duration,
    years=st.integers(0, 200),
    months=st.integers(0, 2400),
    days=st.integers(0, 100_000),
    seconds=st.integers(0, 10**7),
)


@given(durations)
def test_a_formatted_duration_parses_to_itself(duration: Duration) -> None:
    assert parse_duration(iso(duration)) == duration


@given(st.integers(0, 10_000))
def test_weeks_are_seven_days(weeks: int) -> None:
    assert parse_duration(f"P{weeks}W") == parse_duration(f"P{7 * weeks}D")


@given(durations, durations)
def test_approximate_days_order_calendar_units(shorter: Duration, longer: Duration) -> None:
    """Only used to compare configured durations: a duration with more of every unit is never shorter."""
    bigger = Duration(
        years=max(shorter.years, longer.years),
        months=max(shorter.months, longer.months),
        days=max(shorter.days, longer.days),
        seconds=max(shorter.seconds, longer.seconds),
    )
    assert bigger.approximate_days() >= shorter.approximate_days()
    assert bigger.approximate_days() >= longer.approximate_days()
