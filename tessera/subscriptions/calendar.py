"""Calendar arithmetic for subscription terms: whole days, clamped months, local midnights as UTC instants.

The rules are described in docs/domain.md, "Subscription terms".
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from tessera.durations import Duration


def last_day_of_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months (negative: back); a day the target month lacks becomes its last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, last_day_of_month(year, month)))


def total_months(duration: Duration) -> int:
    return duration.years * 12 + duration.months


def shift(origin: date, step: Duration, times: int) -> date:
    """`origin` + times * step, computed from the origin in one go so that clamping never accumulates."""
    return add_months(origin, total_months(step) * times) + timedelta(days=step.days * times)


def months_back_month_end(last_day: date, months: int) -> date:
    """Count whole months back, month end to month end: from a month's last day to the last day of the earlier one."""
    earlier = add_months(last_day, -months)
    if last_day.day == last_day_of_month(last_day.year, last_day.month):
        return earlier.replace(day=last_day_of_month(earlier.year, earlier.month))
    return earlier


def last_day_to_cancel(valid_through: date, notice: Duration) -> date:
    """The last day on which a cancellation still ends the term whose last day is `valid_through`.

    Months (and years, as 12 months) count back from the inclusive last day, month end to month end; days are then
    taken off. For a notice period of n days that is the exclusive end minus n days, minus one: the deadline passes
    at the local midnight n days before the term ends, leaving n whole days of notice.
    """
    months = total_months(notice)
    day = months_back_month_end(valid_through, months) if months else valid_through
    return day - timedelta(days=notice.days)


# Four years hold every length a month or a year can have (28-31 days, 365-366): a full leap cycle of starts.
_EVERY_KIND_OF_START = [date(2000, 1, 1) + timedelta(days=offset) for offset in range(4 * 365 + 1)]


@cache  # it walks four years of starts; every check of a product's settings asks it again
def notice_fills_a_term(term: Duration, notice: Duration) -> bool:
    """Whether some term of this length leaves no day to cancel: the notice period is as long as the term.

    Exact, not an average: `P365D` against `P1Y` fills a 365-day year, `P28D` against `P1M` fills February.
    """
    for start in _EVERY_KIND_OF_START:
        valid_through = shift(start, term, 1) - timedelta(days=1)
        if last_day_to_cancel(valid_through, notice) < start:
            return True
    return False


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC.

    Usually local 00:00. Where 00:00 falls into a gap (clocks jump forward at midnight) the day begins when the
    gap ends; where 00:00 happens twice (clocks go back at 01:00) the day begins at the first of them (fold=0).
    """
    # fold=0 reads a non-existent time with the offset before the gap: for a gap that starts exactly at
    # midnight that is the gap's end, but a gap that merely spans midnight needs the search below.
    candidate = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    if candidate.astimezone(zone).date() == day and _is_first_instant(candidate, day, zone):
        return candidate
    # The day's first instant lies between reading midnight with the later and with the earlier offset.
    low = datetime(day.year, day.month, day.day, fold=1, tzinfo=zone).astimezone(UTC) - timedelta(days=1)
    high = candidate + timedelta(days=1)
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while lo < hi:  # zone transitions fall on whole seconds
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).date() >= day:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


def _is_first_instant(instant: datetime, day: date, zone: ZoneInfo) -> bool:
    return (instant - timedelta(seconds=1)).astimezone(zone).date() < day
