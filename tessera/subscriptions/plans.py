"""A stored subscription's term plan, and the term that covers a given instant.

The plan is rebuilt from the snapshot the subscription took at order time (settings, time zone, price), never
from today's catalog, so a catalog edit changes no running subscription.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tessera.catalog.schema import SubscriptionTerms
from tessera.models import Subscription
from tessera.subscriptions.terms import MAX_TERM_NUMBER, Term, TermPlan


def plan_of(subscription: Subscription, start: date | None = None) -> TermPlan:
    """The plan of a subscription whose first day is known (or is given as `start`)."""
    first_day = start or subscription.start_date
    if first_day is None:
        raise ValueError(f"subscription {subscription.id} has no start yet (it waits for its first activation)")
    return TermPlan(
        settings=SubscriptionTerms.model_validate(subscription.terms),
        start=first_day,
        timezone=subscription.timezone,
        price=subscription.unit_price,
        currency=subscription.currency,
    )


def local_date(instant: datetime, timezone: str) -> date:
    """The day `instant` falls on in `timezone`: a purchase or activation date."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def term_covering(plan: TermPlan, instant: datetime) -> Term:
    """The term running at `instant` (term 1 if it has not begun yet); found by bisection, terms never overlap."""
    first = plan.term(1)
    if instant < first.ends_at:
        return first
    low, high = 1, 2
    while plan.term(high).ends_at <= instant:
        low, high = high, min(high * 2, MAX_TERM_NUMBER)
        if low == MAX_TERM_NUMBER:
            raise ValueError("the instant lies beyond the last term a subscription can have")
    while high - low > 1:  # invariant: term(low) ended by `instant`, term(high) has not
        middle = (low + high) // 2
        if plan.term(middle).ends_at <= instant:
            low = middle
        else:
            high = middle
    return plan.term(high)
