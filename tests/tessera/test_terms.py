"""Subscription date rules, case by case: anchors, clamping, notice deadlines, first-term prices, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tessera.catalog.schema import MonthDay, SubscriptionTerms
from tessera.subscriptions.calendar import add_months, local_midnight, months_back_month_end
from tessera.subscriptions.terms import Term, TermPlan


def plan(
    start: date, zone: str = "UTC", price: str | None = None, currency: str | None = None, **settings: object
) -> TermPlan:
    return TermPlan(
        settings=SubscriptionTerms.model_validate(settings),
        start=start,
        timezone=zone,
        price=None if price is None else Decimal(price),
        currency=currency,
    )


def exclusive_ends(subject: TermPlan, count: int) -> list[date]:
    return [term.valid_through + timedelta(days=1) for term in subject.terms(count)]


# --- anniversary anchors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "term", "ends"),
    [
        (date(2024, 2, 29), "P1Y", [date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)]),
        (date(2023, 2, 28), "P1Y", [date(2024, 2, 28), date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28)]),
        (date(2023, 3, 1), "P1Y", [date(2024, 3, 1), date(2025, 3, 1), date(2026, 3, 1), date(2027, 3, 1)]),
        (date(2026, 1, 31), "P1M", [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]),
        (date(2027, 1, 31), "P1M", [date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31)]),
        (date(2028, 1, 31), "P1M", [date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30), date(2028, 5, 31)]),
        (date(2025, 12, 31), "P1Y", [date(2026, 12, 31), date(2027, 12, 31), date(2028, 12, 31), date(2029, 12, 31)]),
        (date(2025, 12, 31), "P1M", [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]),
        (date(2026, 1, 1), "P1Y", [date(2027, 1, 1), date(2028, 1, 1), date(2029, 1, 1), date(2030, 1, 1)]),
        (date(2026, 1, 1), "P30D", [date(2026, 1, 31), date(2026, 3, 2), date(2026, 4, 1), date(2026, 5, 1)]),
        (date(2026, 1, 1), "P2W", [date(2026, 1, 15), date(2026, 1, 29), date(2026, 2, 12), date(2026, 2, 26)]),
    ],
)
def test_anniversary_terms_end_at_anchor_plus_k_terms_clamped(anchor: date, term: str, ends: list[date]) -> None:
    subject = plan(anchor, term=term, notice_period="P1D")
    assert exclusive_ends(subject, 4) == ends
    assert subject.term(1).first_day == anchor


def test_an_anchor_on_29_february_ends_valid_through_the_day_before() -> None:
    first, _, _, fourth = plan(date(2024, 2, 29)).terms(4)
    assert (first.first_day, first.valid_through) == (date(2024, 2, 29), date(2025, 2, 27))
    assert (fourth.first_day, fourth.valid_through) == (date(2027, 2, 28), date(2028, 2, 28))
    assert fourth.ends_at == datetime(2028, 2, 29, tzinfo=UTC)


def test_term_600_is_computed_directly_and_equals_the_listing() -> None:
    subject = plan(date(2026, 1, 31), term="P1M", notice_period="P7D")
    listed = list(subject.terms(600))
    assert subject.term(600) == listed[-1]
    # 50 years on, the anchor day is still kept where the month has it.
    assert subject.term(600).valid_through == date(2076, 1, 30)
    assert subject.term(601).first_day == date(2076, 1, 31)


def test_term_numbers_and_plan_inputs_are_checked() -> None:
    subject = plan(date(2026, 1, 1))
    with pytest.raises(ValueError, match="term number"):
        subject.term(0)
    with pytest.raises(ValueError, match="after the year 9999"):
        subject.term(8000)
    with pytest.raises(ValueError, match="currency"):
        TermPlan(SubscriptionTerms(), date(2026, 1, 1), price=Decimal("10"))
    with pytest.raises(ValueError, match="IANA"):
        TermPlan(SubscriptionTerms(), date(2026, 1, 1), timezone="Mars/Base")
    with pytest.raises(ValueError, match="ISO 4217"):
        TermPlan(SubscriptionTerms(), date(2026, 1, 1), price=Decimal("10"), currency="XXX")
    with pytest.raises(ValueError, match="non-negative"):
        TermPlan(SubscriptionTerms(), date(2026, 1, 1), price=Decimal("-1"), currency="EUR")


def test_add_months_clamps_in_both_directions() -> None:
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2026, 1, 31), 13) == date(2027, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)


# --- notice deadlines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_through", "notice", "last_day"),
    [
        (date(2026, 3, 31), "P1M", date(2026, 2, 28)),
        (date(2026, 3, 30), "P1M", date(2026, 2, 28)),
        (date(2026, 3, 14), "P1M", date(2026, 2, 14)),
        # Month end to month end: the 30th of April is the end of its month, so the deadline is the 31st of March.
        (date(2026, 4, 30), "P1M", date(2026, 3, 31)),
        (date(2026, 5, 31), "P3M", date(2026, 2, 28)),
        (date(2028, 5, 31), "P3M", date(2028, 2, 29)),
        (date(2026, 12, 31), "P1Y", date(2025, 12, 31)),
        (date(2028, 2, 29), "P1Y", date(2027, 2, 28)),
    ],
)
def test_month_notice_counts_back_from_the_last_day_month_end_to_month_end(
    valid_through: date, notice: str, last_day: date
) -> None:
    anchor = add_months(valid_through + timedelta(days=1), -24)
    subject = plan(anchor, term="P2Y", notice_period=notice)
    term = subject.term(1)
    assert term.valid_through == valid_through
    assert term.last_day_to_cancel == last_day
    assert term.cancel_deadline_at == datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC)


def test_month_end_rule_on_its_own() -> None:
    assert months_back_month_end(date(2026, 2, 28), 1) == date(2026, 1, 31)
    assert months_back_month_end(date(2026, 2, 27), 1) == date(2026, 1, 27)
    assert months_back_month_end(date(2026, 3, 31), 0) == date(2026, 3, 31)


def test_day_notice_is_taken_off_the_exclusive_end() -> None:
    """P30D before an end at 2027-01-01 00:00: the deadline passes at 2026-12-02 00:00; the 1st is the last day."""
    term = plan(date(2026, 1, 1), notice_period="P30D").term(1)
    assert term.ends_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert term.cancel_deadline_at == term.ends_at - timedelta(days=30)
    assert term.last_day_to_cancel == date(2026, 12, 1)
    weekly = plan(date(2026, 1, 1), notice_period="P2W").term(1)
    assert weekly.last_day_to_cancel == date(2026, 12, 17)


def test_a_zero_notice_period_runs_to_the_end_of_the_term() -> None:
    term = plan(date(2026, 1, 1), notice_period="P0D").term(1)
    assert (term.last_day_to_cancel, term.cancel_deadline_at) == (term.valid_through, term.ends_at)


def test_notice_as_long_as_the_term_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="is as long as a term"):
        SubscriptionTerms(term="P1M", notice_period="P1M")
    with pytest.raises(ValueError, match="is as long as a term"):
        SubscriptionTerms(term="P1Y", notice_period="P13M")


def test_a_short_first_term_can_have_its_deadline_before_it_starts() -> None:
    """A partial first term shorter than the notice period: its renewal is committed from the first day."""
    term = plan(date(2026, 12, 1), alignment="calendar_year", notice_period="P3M").term(1)
    assert term.last_day_to_cancel == date(2026, 9, 30)
    assert term.cancel_deadline_at < term.starts_at


# --- aligned terms, first-term prices ------------------------------------------------------------------------


def test_purchase_on_31_december_with_calendar_year_has_a_one_day_first_term() -> None:
    first, second = plan(date(2026, 12, 31), price="1200.00", currency="EUR", alignment="calendar_year").terms(2)
    assert (first.first_day, first.valid_through, first.price) == (
        date(2026, 12, 31),
        date(2026, 12, 31),
        Decimal("3.29"),
    )
    assert (second.first_day, second.valid_through, second.price) == (
        date(2027, 1, 1),
        date(2027, 12, 31),
        Decimal("1200.00"),
    )


@pytest.mark.parametrize(
    ("first_term", "price"),
    [("prorate", Decimal("1203.29")), ("free", Decimal("1200.00")), ("full", Decimal("1200.00"))],
)
def test_cutoff_days_extend_a_late_start_to_the_following_boundary(first_term: str, price: Decimal) -> None:
    subject = plan(
        date(2026, 12, 31),
        price="1200.00",
        currency="EUR",
        alignment="calendar_year",
        cutoff_days=7,
        first_term=first_term,
    )
    first, second = subject.terms(2)
    assert subject.first_term_extended
    assert (first.first_day, first.valid_through, first.price) == (date(2026, 12, 31), date(2027, 12, 31), price)
    assert second.first_day == date(2028, 1, 1)


def test_cutoff_counts_the_days_up_to_the_boundary() -> None:
    inside = plan(date(2026, 12, 25), alignment="calendar_year", cutoff_days=7)
    outside = plan(date(2026, 12, 24), alignment="calendar_year", cutoff_days=7)
    assert (inside.stub_days, inside.term(1).valid_through) == (7, date(2027, 12, 31))
    assert (outside.stub_days, outside.term(1).valid_through) == (8, date(2026, 12, 31))


@pytest.mark.parametrize(("first_term", "price"), [("free", Decimal("0.00")), ("full", Decimal("1200.00"))])
def test_free_and_full_first_terms(first_term: str, price: Decimal) -> None:
    subject = plan(date(2026, 7, 1), price="1200.00", currency="EUR", alignment="calendar_year", first_term=first_term)
    assert subject.term(1).price == price
    assert subject.term(2).price == Decimal("1200.00")


def test_a_start_on_the_boundary_has_no_partial_term() -> None:
    subject = plan(date(2027, 1, 1), price="1200.00", currency="EUR", alignment="calendar_year", cutoff_days=30)
    assert not subject.has_stub
    assert (subject.term(1).valid_through, subject.term(1).price) == (date(2027, 12, 31), Decimal("1200.00"))


@pytest.mark.parametrize(
    ("start", "price", "currency", "expected"),
    [
        # 73 of 365 days is exactly a fifth: 10.125 / 5 = 2.025, half up to 2.03 (banker's rounding would say 2.02).
        (date(2026, 10, 20), "10.125", "EUR", Decimal("2.03")),
        # 183 of 366 days (2028 is a leap year): 1001 / 2 = 500.5, half up to 501 yen.
        (date(2028, 7, 2), "1001", "JPY", Decimal("501")),
        # Three minor units: 10.0125 / 5 = 2.0025, half up to 2.003 dinars.
        (date(2026, 10, 20), "10.0125", "KWD", Decimal("2.003")),
        (date(2026, 12, 31), "1200", "JPY", Decimal("3")),
    ],
)
def test_prorated_first_term_rounds_half_up_to_the_minor_unit(
    start: date, price: str, currency: str, expected: Decimal
) -> None:
    term = plan(start, price=price, currency=currency, alignment="calendar_year").term(1)
    assert term.price == expected
    assert term.price is not None
    assert term.price.as_tuple().exponent == expected.as_tuple().exponent


def test_fiscal_year_from_1_april() -> None:
    subject = plan(
        date(2026, 7, 15),
        price="1000.00",
        currency="EUR",
        alignment="fiscal_year",
        fiscal_year_start=MonthDay(month=4, day=1),
    )
    first, second, third = subject.terms(3)
    assert (first.first_day, first.valid_through) == (date(2026, 7, 15), date(2027, 3, 31))
    assert (second.first_day, second.valid_through) == (date(2027, 4, 1), date(2028, 3, 31))
    assert third.first_day == date(2028, 4, 1)
    # "That year" is the fiscal year holding the partial term: 2026-04-01 to 2027-03-31, 365 days; 260 of them.
    assert subject.stub_days == 260
    assert first.price == Decimal("712.33")


def test_fiscal_year_holding_29_february_has_366_days() -> None:
    subject = plan(
        date(2027, 7, 15),
        price="1000.00",
        currency="EUR",
        alignment="fiscal_year",
        fiscal_year_start=MonthDay(month=4, day=1),
    )
    assert subject.stub_days == 261
    assert subject.term(1).price == Decimal("713.11")  # 1000 x 261 / 366


def test_a_start_before_the_fiscal_start_belongs_to_the_previous_fiscal_year() -> None:
    subject = plan(date(2026, 2, 10), alignment="fiscal_year", fiscal_year_start=MonthDay(month=4, day=1))
    assert subject.term(1).valid_through == date(2026, 3, 31)
    assert subject.term(2).first_day == date(2026, 4, 1)


def test_monthly_terms_aligned_to_the_calendar_run_to_the_first_of_each_month() -> None:
    subject = plan(
        date(2026, 3, 17), price="31.00", currency="EUR", term="P1M", notice_period="P7D", alignment="calendar_year"
    )
    first, second = subject.terms(2)
    assert (first.valid_through, first.price) == (date(2026, 3, 31), Decimal("15.00"))  # 31.00 x 15 / 31
    assert (second.first_day, second.valid_through) == (date(2026, 4, 1), date(2026, 4, 30))


# --- time zones -------------------------------------------------------------------------------------------------


def test_where_local_midnight_does_not_exist_the_term_starts_at_the_first_instant_of_the_day() -> None:
    """Chile moved its clocks from 2022-09-11 00:00 straight to 01:00."""
    santiago = ZoneInfo("America/Santiago")
    first, second = plan(date(2022, 8, 11), "America/Santiago", term="P1M", notice_period="P7D").terms(2)
    assert first.ends_at == second.starts_at == datetime(2022, 9, 11, 4, tzinfo=UTC)
    assert second.starts_at.astimezone(santiago).hour == 1
    assert first.starts_at.astimezone(santiago).hour == 0
    # The hour that never was belongs to the second term's first day: 30 days, an hour short of 30 x 24 hours.
    assert (first.ends_at - first.starts_at, first.days) == (timedelta(days=31), 31)
    assert (second.ends_at - second.starts_at, second.days) == (timedelta(days=30, hours=-1), 30)
    # Lebanon, 2023-03-26: 00:00 became 01:00 as well.
    assert local_midnight(date(2023, 3, 26), ZoneInfo("Asia/Beirut")) == datetime(2023, 3, 25, 22, tzinfo=UTC)


def test_a_gap_that_is_not_at_midnight_or_a_repeated_midnight() -> None:
    # Samoa skipped 2011-12-30 entirely: that day "begins" when 2011-12-31 does.
    apia = ZoneInfo("Pacific/Apia")
    assert local_midnight(date(2011, 12, 30), apia) == local_midnight(date(2011, 12, 31), apia)
    assert local_midnight(date(2011, 12, 30), apia) == datetime(2011, 12, 30, 10, tzinfo=UTC)
    # Toronto, 1919-03-30: clocks went from 23:30 straight to 00:30, so 31 March began at 00:30 (04:30 UTC).
    toronto = ZoneInfo("America/Toronto")
    assert local_midnight(date(1919, 3, 31), toronto) == datetime(1919, 3, 31, 4, 30, tzinfo=UTC)
    assert local_midnight(date(1919, 3, 31), toronto).astimezone(toronto).minute == 30
    # Cuba, 2023-11-05: clocks went back from 01:00 to 00:00, so midnight happened twice; the day starts at the first.
    assert local_midnight(date(2023, 11, 5), ZoneInfo("America/Havana")) == datetime(2023, 11, 5, 4, tzinfo=UTC)


def test_terms_across_a_dst_change_differ_in_hours_not_in_days() -> None:
    spring, _, summer, *_ = plan(date(2026, 3, 1), "Europe/Berlin", term="P1M", notice_period="P7D").terms(8)
    autumn = plan(date(2026, 10, 1), "Europe/Berlin", term="P1M", notice_period="P7D").term(1)
    assert (spring.days, spring.ends_at - spring.starts_at) == (31, timedelta(hours=31 * 24 - 1))
    assert (summer.days, summer.ends_at - summer.starts_at) == (31, timedelta(hours=31 * 24))
    assert (autumn.days, autumn.ends_at - autumn.starts_at) == (31, timedelta(hours=31 * 24 + 1))
    assert spring.starts_at == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert spring.ends_at == datetime(2026, 3, 31, 22, tzinfo=UTC)


def test_the_cancel_deadline_is_the_end_of_the_last_day_in_local_time() -> None:
    term = plan(date(2026, 1, 1), "Asia/Tokyo", notice_period="P1M").term(1)
    assert term.last_day_to_cancel == date(2026, 11, 30)
    assert term.cancel_deadline_at == datetime(2026, 11, 30, 15, tzinfo=UTC)  # 2026-12-01 00:00 in Tokyo


def test_a_term_survives_a_json_round_trip_as_a_workflow_carries_it() -> None:
    term = plan(date(2026, 12, 31), "Europe/Berlin", price="1200.00", currency="EUR", alignment="calendar_year").term(1)
    copy = Term.model_validate_json(term.model_dump_json())
    assert copy == term
    assert (copy.price, copy.ends_at) == (Decimal("3.29"), datetime(2026, 12, 31, 23, tzinfo=UTC))


def test_a_plan_keeps_the_settings_it_was_made_with() -> None:
    settings = SubscriptionTerms(term="P1Y")
    subject = TermPlan(settings, date(2026, 1, 1))
    settings.term = "P1M"
    assert subject.term(1).valid_through == date(2026, 12, 31)
