"""Properties of subscription terms over anchors from 1900 to 2100, 50 terms each, in many time zones."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.catalog.schema import MonthDay, SubscriptionTerms
from tessera.durations import parse_duration
from tessera.subscriptions.terms import Term, TermPlan

TERMS = 50
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Pacific/Apia",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/Toronto",
]
# Month-based notice periods shorter than every month-based term they are paired with, and day periods shorter
# than the shortest possible term, keep every deadline inside its term (see `_deadline_inside_term`).
TERM_LENGTHS = ["P1Y", "P2Y", "P1M", "P3M", "P6M", "P1Y6M", "P7D", "P30D", "P365D", "P2W", "P1M10D"]
NOTICES = ["P0D", "P1D", "P6D", "P1M", "P3M", "P11M", "P30D", "P90D"]

anchors = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
zones = st.sampled_from(ZONES)


@st.composite
def term_settings(draw: st.DrawFn, aligned: bool | None = None) -> SubscriptionTerms:
    term = draw(st.sampled_from(TERM_LENGTHS))
    notice = draw(st.sampled_from(NOTICES).filter(lambda n: _notice_fits(term, n)))
    alignment = draw(
        st.sampled_from(
            ["anniversary"]
            if aligned is False
            else ["calendar_year", "fiscal_year"]
            if aligned
            else ["anniversary", "calendar_year", "fiscal_year"]
        )
    )
    fiscal = None
    if alignment == "fiscal_year":
        fiscal = MonthDay(month=draw(st.integers(1, 12)), day=draw(st.integers(1, 28)))
    return SubscriptionTerms(
        term=term,
        notice_period=notice,
        alignment=alignment,
        fiscal_year_start=fiscal,
        first_term=draw(st.sampled_from(["prorate", "free", "full"])),
        cutoff_days=draw(st.integers(0, 40)),
    )


def _notice_fits(term: str, notice: str) -> bool:
    """Within the catalog's rule, and short enough that the deadline never falls before the term starts."""
    t, n = parse_duration(term), parse_duration(notice)
    if n.approximate_days() >= t.approximate_days():
        return False
    shortest_term = (t.years * 12 + t.months) * 28 + t.days
    longest_notice = (n.years * 12 + n.months) * 31 + n.days
    return longest_notice < shortest_term or (not n.days and n.years * 12 + n.months < t.years * 12 + t.months)


def _plan(settings_: SubscriptionTerms, start: date, zone: str, price: str = "1200.00") -> TermPlan:
    return TermPlan(settings=settings_, start=start, timezone=zone, price=Decimal(price), currency="EUR")


def _check_instants(term: Term) -> None:
    for instant in (term.starts_at, term.ends_at, term.cancel_deadline_at):
        assert instant.tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(term_settings(), anchors, zones)
def test_terms_tile_exactly_and_the_listing_equals_direct_computation(
    terms_: SubscriptionTerms, start: date, zone: str
) -> None:
    subject = _plan(terms_, start, zone)
    listed = list(subject.terms(TERMS))
    assert listed[0].first_day == start
    for earlier, later in itertools.pairwise(listed):
        assert later.first_day == earlier.valid_through + timedelta(days=1)
        assert later.starts_at == earlier.ends_at
        assert later.number == earlier.number + 1
    local = ZoneInfo(zone)
    for term in listed:
        _check_instants(term)
        # The first instant of the first local day: the second before it belongs to an earlier day.
        assert (term.starts_at - timedelta(seconds=1)).astimezone(local).date() < term.first_day
        assert term.starts_at.astimezone(local).date() >= term.first_day
        assert term.first_day <= term.valid_through
        assert term.starts_at < term.ends_at or zone == "Pacific/Apia"
        assert term.cancel_deadline_at <= term.ends_at
        assert term.last_day_to_cancel <= term.valid_through
        assert term.price is not None
        assert term.price >= 0
    # Direct computation of any term equals the listing's: no drift, no dependence on earlier terms.
    for number in (1, 2, 17, TERMS):
        assert subject.term(number) == listed[number - 1]
    # A fresh plan (nothing cached) computes the last term alone and gets the same.
    assert _plan(terms_, start, zone).term(TERMS) == listed[-1]


@settings(max_examples=200, deadline=None)
@given(term_settings(aligned=False), anchors, zones)
def test_anniversary_terms_keep_the_anchor_day_and_their_deadlines_inside_the_term(
    terms_: SubscriptionTerms, anchor: date, zone: str
) -> None:
    term_length = parse_duration(terms_.term)
    listed = list(_plan(terms_, anchor, zone).terms(TERMS))
    for term in listed:
        assert term.cancel_deadline_at >= term.starts_at
        assert term.price == Decimal("1200.00")
        if term_length.days == 0:
            # Every boundary is the anchor's day of the month, or the month's last day where it is shorter.
            end = term.valid_through + timedelta(days=1)
            assert end.day == min(anchor.day, calendar.monthrange(end.year, end.month)[1])
        if terms_.term == "P1Y":
            assert term.days in (365, 366)


@settings(max_examples=200, deadline=None)
@given(term_settings(aligned=True), anchors, zones)
def test_aligned_terms_start_on_the_boundary_after_the_first(terms_: SubscriptionTerms, start: date, zone: str) -> None:
    subject = _plan(terms_, start, zone)
    listed = list(subject.terms(TERMS))
    month, day = (
        (1, 1) if terms_.fiscal_year_start is None else (terms_.fiscal_year_start.month, terms_.fiscal_year_start.day)
    )
    first = listed[0]
    assert first.days >= 1
    if subject.first_term_extended:
        assert subject.stub_days <= terms_.cutoff_days
    for term in listed[1:]:
        assert term.price == Decimal("1200.00")
        assert term.cancel_deadline_at >= term.starts_at
        if parse_duration(terms_.term).days == 0 and parse_duration(terms_.term).months in (0, 1, 3, 6):
            # Terms that divide a year: each starts on the alignment day in some month.
            assert term.first_day.day == day
        if terms_.term == "P1Y":
            assert (term.first_day.month, term.first_day.day) == (month, day)
            assert term.days in (365, 366)
    if subject.has_stub and terms_.first_term == "prorate" and not subject.first_term_extended:
        assert first.price is not None
        assert first.price <= Decimal("1200.00")
