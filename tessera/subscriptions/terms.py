"""Subscription terms: when each term runs, when its notice deadline passes and what it costs. Pure: no I/O.

The rules are described in docs/domain.md, "Subscription terms". Every term is computed directly from the
subscription's start (never from the previous term), so term 600 costs what term 1 costs, and a workflow can
carry a `Term` as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache, cached_property
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from tessera.catalog.schema import Alignment, FirstTerm, SubscriptionTerms
from tessera.currency import MINOR_UNITS, check_currency
from tessera.durations import Duration, parse_duration
from tessera.subscriptions.calendar import last_day_to_cancel, local_midnight, shift
from tessera.timezones import check_timezone

MAX_TERM_NUMBER = 100_000


@cache
def _zone(name: str) -> ZoneInfo:
    # Checking a name lists the zone database from disk (milliseconds); plans are made far more often than that.
    return ZoneInfo(check_timezone(name))


class Term(BaseModel):
    """One term of a subscription: local days, their UTC instants, the notice deadline and the price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    first_day: date
    valid_through: date
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    last_day_to_cancel: date
    cancel_deadline_at: AwareDatetime
    price: Decimal | None = None
    currency: str | None = None

    @property
    def days(self) -> int:
        return (self.valid_through - self.first_day).days + 1


@dataclass(frozen=True)
class TermPlan:
    """The terms a subscription will have, from its settings, start date, time zone and price per term.

    `start` is the first day of term 1: for anniversary terms the anchor (the purchase date or the first
    activation date, as `settings.anchor` says; the caller supplies the date), for aligned terms the day the
    subscription starts.
    """

    settings: SubscriptionTerms
    start: date
    timezone: str = "UTC"
    price: Decimal | None = None
    currency: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _zone(self.timezone))
        # The settings model is mutable; the cached boundaries must not go stale if the caller's copy changes.
        object.__setattr__(self, "settings", self.settings.model_copy(deep=True))
        if (self.price is None) != (self.currency is None):
            raise ValueError("a price needs its currency and a currency its price")
        if self.currency is not None:
            check_currency(self.currency)
        if self.price is not None and (not self.price.is_finite() or self.price < 0):
            raise ValueError(f"a price is a non-negative decimal amount (got {self.price})")

    @cached_property
    def _term(self) -> Duration:
        return parse_duration(self.settings.term)

    @cached_property
    def _notice(self) -> Duration:
        return parse_duration(self.settings.notice_period)

    @property
    def aligned(self) -> bool:
        return self.settings.alignment != Alignment.anniversary

    # --- boundaries -------------------------------------------------------------------------------------------

    @cached_property
    def _origin(self) -> date:
        """Where the boundary grid starts: the anchor, or the alignment year start on or before `start`."""
        if not self.aligned:
            return self.start
        month, day = (1, 1)
        if self.settings.fiscal_year_start is not None:
            month, day = self.settings.fiscal_year_start.month, self.settings.fiscal_year_start.day
        year_start = date(self.start.year, month, day)
        return year_start if year_start <= self.start else year_start.replace(year=self.start.year - 1)

    def _boundary(self, index: int) -> date:
        return shift(self._origin, self._term, index)

    @cached_property
    def _stub_end_index(self) -> int:
        """The index of the first boundary after `start` (0 < index; for anniversary terms always 1)."""
        if not self.aligned:
            return 1
        # The origin is less than a year before the start: estimate, then settle on the exact boundary.
        approximate = max(int((self.start - self._origin).days // self._term.approximate_days()) - 1, 1)
        index = approximate
        while index > 1 and self._boundary(index - 1) > self.start:
            index -= 1
        while self._boundary(index) <= self.start:
            index += 1
        return index

    @cached_property
    def has_stub(self) -> bool:
        """An aligned subscription that starts between two boundaries begins with a partial first term."""
        return self.aligned and self._boundary(self._stub_end_index - 1) != self.start

    @cached_property
    def stub_days(self) -> int:
        """Days from the start to the first boundary (0 without a partial first term)."""
        if not self.has_stub:
            return 0
        return (self._boundary(self._stub_end_index) - self.start).days

    @cached_property
    def first_term_extended(self) -> bool:
        """A start at most `cutoff_days` before a boundary runs on to the boundary after it."""
        return self.has_stub and self.stub_days <= self.settings.cutoff_days

    @cached_property
    def _first_end_index(self) -> int:
        return self._stub_end_index + (1 if self.first_term_extended else 0)

    def _bounds(self, number: int) -> tuple[date, date]:
        """First day and exclusive end day of term `number`."""
        if number == 1:
            return self.start, self._boundary(self._first_end_index)
        index = self._first_end_index + number - 2
        return self._boundary(index), self._boundary(index + 1)

    # --- the terms --------------------------------------------------------------------------------------------

    def term(self, number: int) -> Term:
        """Term `number` (1 is the first), computed directly."""
        if not 1 <= number <= MAX_TERM_NUMBER:
            raise ValueError(f"a term number is between 1 and {MAX_TERM_NUMBER} (got {number})")
        try:
            first_day, end_day = self._bounds(number)
            valid_through = end_day - timedelta(days=1)
            last_day = self.last_day_to_cancel(valid_through)
            starts_at, ends_at = local_midnight(first_day, self._zone), local_midnight(end_day, self._zone)
            deadline_at = local_midnight(last_day + timedelta(days=1), self._zone)
        except (OverflowError, ValueError):
            raise ValueError(f"term {number} would end after the year 9999") from None
        return Term(
            number=number,
            first_day=first_day,
            valid_through=valid_through,
            starts_at=starts_at,
            ends_at=ends_at,
            last_day_to_cancel=last_day,
            cancel_deadline_at=deadline_at,
            price=self.term_price(number),
            currency=self.currency,
        )

    def terms(self, count: int, first: int = 1) -> Iterator[Term]:
        """`count` consecutive terms from term `first` on."""
        for number in range(first, first + count):
            yield self.term(number)

    def last_day_to_cancel(self, valid_through: date) -> date:
        """The last local day on which a cancellation still takes effect at the end of the term ending then."""
        return last_day_to_cancel(valid_through, self._notice)

    # --- prices -----------------------------------------------------------------------------------------------

    def term_price(self, number: int) -> Decimal | None:
        """What term `number` costs, in whole minor units of the currency (rounded half up)."""
        if self.price is None or self.currency is None:
            return None
        if number > 1 or not self.has_stub or self.settings.first_term == FirstTerm.full:
            return self._round(self.price)
        whole_term = self.price if self.first_term_extended else Decimal(0)
        if self.settings.first_term == FirstTerm.free:
            return self._round(whole_term)
        year_days = (self._boundary(self._stub_end_index) - self._boundary(self._stub_end_index - 1)).days
        with localcontext() as context:
            context.prec = 60  # exact enough that only a true half rounds up
            return self._round(self.price * self.stub_days / year_days + whole_term)

    def _round(self, amount: Decimal) -> Decimal:
        assert self.currency is not None
        with localcontext() as context:
            context.prec = 60
            return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[self.currency]), rounding=ROUND_HALF_UP)


def utc(instant: datetime) -> str:
    """An instant as ISO 8601 UTC with a `Z`, as `tessera terms` prints it."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
