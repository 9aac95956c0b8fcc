"""Report periods as dates and as instants in the vendor's time zone (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from tessera.subscriptions.calendar import add_months, last_day_of_month, local_midnight

EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(9000, 12, 31)
"""Report days outside these are mistakes (and near the calendar's ends, instants overflow)."""

MAX_RENEWAL_DAYS = 400
"""The longest renewal period asked for on demand: a year and some, more is a mistake (or a denial of service)."""


class ReportKind(StrEnum):
    renewals = "renewals"
    active_subscriptions = "active-subscriptions"


@dataclass(frozen=True)
class Period:
    """Half-open `[first_day, end_day)` in the vendor's zone; `active` reports cover the single day `on`."""

    kind: ReportKind
    first_day: date
    end_day: date
    zone: str

    @property
    def starts_at(self) -> datetime:
        return local_midnight(self.first_day, ZoneInfo(self.zone))

    @property
    def ends_at(self) -> datetime:
        return local_midnight(self.end_day, ZoneInfo(self.zone))

    @property
    def key(self) -> str:
        """How recorded runs and workflow ids name it: YYYY-MM (a renewal month), YYYY-MM-DD (the day D)."""
        if self.kind == ReportKind.active_subscriptions:
            return self.first_day.isoformat()
        if self.first_day.day == 1 and self.end_day == add_months(self.first_day, 1):
            return self.first_day.strftime("%Y-%m")
        return f"{self.first_day.isoformat()}_{self.end_day.isoformat()}"

    @property
    def month(self) -> str:
        return self.first_day.strftime("%Y-%m")


def renewal_period(first_day: date, end_day: date, zone: str) -> Period:
    return Period(ReportKind.renewals, first_day, end_day, zone)


def renewal_month(month: str, zone: str) -> Period:
    """`2026-11`: the whole month."""
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    return Period(ReportKind.renewals, first, add_months(first, 1), zone)


def active_day(on: date, zone: str) -> Period:
    return Period(ReportKind.active_subscriptions, on, on + timedelta(days=1), zone)


def day_of_month(year: int, month: int, day: int) -> date:
    """Day D of a month; a D past the month's end means its last day (D = 31 in February: the 28th or 29th)."""
    return date(year, month, min(day, last_day_of_month(year, month)))


_LOOSE_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_day(text: str) -> date:
    """YYYY-MM-DD, where a day 29-31 past the month's end means the month's last day (`2027-02-31`: the 28th)."""
    match = _LOOSE_DATE.match(text)
    if match is None:
        raise ValueError("give a date as YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12 or not 1 <= day <= 31 or year < 1:
        raise ValueError("no such date: the month is 01-12 and the day 01-31")
    return within_range(day_of_month(year, month, day))


def within_range(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"no report days before {EARLIEST_DAY.isoformat()} or after {LATEST_DAY.isoformat()}")
    return day


def scheduled_period(kind: ReportKind, local_day: date, day: int, zone: str) -> Period | None:
    """The period a scheduled run on `local_day` reports, or None when `local_day` is not day D of its month.

    Renewals: the month before. Active subscriptions: day D itself, at its local 00:00.
    """
    if local_day != day_of_month(local_day.year, local_day.month, day):
        return None
    if kind == ReportKind.active_subscriptions:
        return active_day(local_day, zone)
    this_month = local_day.replace(day=1)
    return Period(kind, add_months(this_month, -1), this_month, zone)
