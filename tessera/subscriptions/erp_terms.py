"""Terms of an ERP-managed subscription: the ERP says until when it runs, one reference per change.

No renewal workflow runs for such a subscription. A later `valid_through` than the latest term's adds the next
term (kind `erp`), starting the day after; an earlier one ends the latest term early. Either way the licenses'
technical expiry follows. Each `external_ref` names one change: repeating it with the same date answers with the
term as it stands, with another date it is refused. The change is recorded under the subscription's row lock with
a history entry keyed by the reference, so concurrent repeats make one term.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import FieldIssue, Forbidden, InvalidInput
from tessera.models import (
    ManagedBy,
    Permission,
    Subscription,
    SubscriptionEvent,
    SubscriptionStatus,
    SubscriptionTerm,
    TermKind,
)
from tessera.principal import Principal
from tessera.reports.lines import write_lines
from tessera.rights import acting, reach
from tessera.subscriptions import reads, seats
from tessera.subscriptions.calendar import local_midnight
from tessera.subscriptions.creation import add_term, record, set_current_term, term_row
from tessera.subscriptions.refusals import ExternalRefReused, NotManagedByErp, SubscriptionEnded, SubscriptionPending
from tessera.subscriptions.requests import locked, product_of
from tessera.subscriptions.terms import Term

LAST_VALID_THROUGH = date(9999, 12, 30)
"""A term ends at local midnight after its last day, which must still be a date."""
FIELD = "valid_through"


@dataclass(frozen=True)
class ErpTermOutcome:
    term: SubscriptionTerm
    created: bool
    """False when the reference was recorded before (or the date is the one in force): nothing changed."""


def _event_key(subscription_id: uuid.UUID, external_ref: str) -> str:
    return f"{subscription_id}:erp:{external_ref}"


async def _may_record(session: AsyncSession, principal: Principal, subscription: Subscription) -> None:
    """Vendor administrators; else whoever administers the subscription's reseller or above and holds `create`."""
    product = await product_of(session, subscription)
    await acting.authorize(
        session, principal, Permission.create, product.group_id, subscription.organization_id, quantity=0
    )
    if principal.vendor_admin:
        return
    path = await reach.path_ids(session, subscription.organization_id)
    above = path[path.index(subscription.reseller_id) :] if subscription.reseller_id in path else []
    if principal.admin_of.isdisjoint(above):
        raise Forbidden("ERP terms are recorded by the vendor's or the reseller's administrators and service accounts")


async def record_term(
    session: AsyncSession,
    principal: Principal,
    secret_key: bytes,
    subscription_id: uuid.UUID,
    *,
    valid_through: date,
    external_ref: str,
    now: datetime,
) -> ErpTermOutcome:
    """Extend or end early an ERP-managed subscription, once per `external_ref`."""
    subscription = (await reads.visible_subscription(session, principal, subscription_id)).subscription
    await _may_record(session, principal, subscription)
    subscription = await locked(session, subscription_id)
    if subscription.managed_by != ManagedBy.erp:
        raise NotManagedByErp("Tessera renews this subscription; cancel it instead (POST .../cancel)")
    earlier = await session.scalar(
        select(SubscriptionEvent).where(SubscriptionEvent.key == _event_key(subscription.id, external_ref))
    )
    if earlier is not None:
        return await _repeated(session, subscription, earlier, valid_through, external_ref)
    if subscription.status == SubscriptionStatus.pending:
        raise SubscriptionPending("the subscription has not started yet (it waits for its first activation)")
    if subscription.status not in (SubscriptionStatus.active, SubscriptionStatus.non_renewing):
        raise SubscriptionEnded(f"the subscription is {subscription.status}; its terms no longer change")
    latest = await term_row(session, subscription.id, subscription.term_no)
    assert latest is not None
    if valid_through <= latest.first_day or valid_through > LAST_VALID_THROUGH:
        raise InvalidInput(
            f"valid_through must be after {latest.first_day.isoformat()}, the first day of term {latest.term_no}",
            issues=[FieldIssue(FIELD, f"a date after {latest.first_day.isoformat()} and before 9999-12-31")],
        )
    zone = ZoneInfo(subscription.timezone)
    action = "erp_ended_early" if valid_through < latest.valid_through else "erp_term"
    if valid_through > latest.valid_through:
        outcome = await _extend(session, secret_key, subscription, latest, valid_through, external_ref, now, zone)
    elif valid_through < latest.valid_through:
        outcome = await _shorten(session, subscription, latest, valid_through, now, zone)
    else:
        outcome = ErpTermOutcome(latest, created=False)
    await record(
        session,
        subscription,
        action,
        key=_event_key(subscription.id, external_ref),
        term_no=outcome.term.term_no,
        detail={"external_ref": external_ref, "valid_through": valid_through.isoformat()},
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
        at=now,
    )
    return outcome


async def _repeated(
    session: AsyncSession,
    subscription: Subscription,
    earlier: SubscriptionEvent,
    valid_through: date,
    external_ref: str,
) -> ErpTermOutcome:
    if earlier.detail.get("valid_through") != valid_through.isoformat():
        raise ExternalRefReused(
            f"external_ref {external_ref!r} set valid_through {earlier.detail.get('valid_through')} before",
            issues=[FieldIssue("external_ref", "already used for another date; use a new reference")],
        )
    row = await term_row(session, subscription.id, earlier.term_no or subscription.term_no)
    assert row is not None
    return ErpTermOutcome(row, created=False)


def _term(number: int, first_day: date, valid_through: date, zone: ZoneInfo) -> Term:
    """An ERP term: no notice deadline of its own (its end is the ERP's to set), priced by the ERP."""
    try:
        starts_at = local_midnight(first_day, zone)
        ends_at = local_midnight(valid_through + timedelta(days=1), zone)
    except (OverflowError, ValueError):
        raise InvalidInput(
            "valid_through is too far in the future", issues=[FieldIssue(FIELD, "a date before 9999-12-31")]
        ) from None
    return Term(
        number=number,
        first_day=first_day,
        valid_through=valid_through,
        starts_at=starts_at,
        ends_at=ends_at,
        last_day_to_cancel=valid_through,
        cancel_deadline_at=ends_at,
    )


async def _make_current(session: AsyncSession, subscription: Subscription, term: Term) -> None:
    await set_current_term(session, subscription, term)
    subscription.last_day_to_cancel = None
    subscription.cancel_deadline_at = None


async def _extend(
    session: AsyncSession,
    secret_key: bytes,
    subscription: Subscription,
    latest: SubscriptionTerm,
    valid_through: date,
    external_ref: str,
    now: datetime,
    zone: ZoneInfo,
) -> ErpTermOutcome:
    term = _term(latest.term_no + 1, latest.valid_through + timedelta(days=1), valid_through, zone)
    quantity = subscription.next_quantity or subscription.quantity
    row = await add_term(
        session, subscription, term, TermKind.erp, quantity, committed_at=now, external_ref=external_ref
    )
    row.last_day_to_cancel = None
    row.cancel_deadline_at = None
    if quantity != subscription.quantity:
        # Seats asked for with PATCH take effect with the ERP's next term, as they would at a renewal.
        await seats.resize(session, secret_key, subscription, quantity, term.ends_at)
        subscription.quantity = quantity
    subscription.next_quantity = None
    await _make_current(session, subscription, term)
    return ErpTermOutcome(row, created=True)


async def _shorten(
    session: AsyncSession,
    subscription: Subscription,
    latest: SubscriptionTerm,
    valid_through: date,
    now: datetime,
    zone: ZoneInfo,
) -> ErpTermOutcome:
    term = _term(latest.term_no, latest.first_day, valid_through, zone)
    if term.ends_at <= now:
        raise InvalidInput(
            f"a term ending on {valid_through.isoformat()} would have ended already; revoke to end it at once",
            issues=[FieldIssue(FIELD, "ends the term in the past")],
        )
    latest.valid_through = term.valid_through
    latest.ends_at = term.ends_at
    latest.last_day_to_cancel = None
    latest.cancel_deadline_at = None
    await write_lines(session, [latest.id])  # the reports bill the term as it now ends
    await _make_current(session, subscription, term)
    return ErpTermOutcome(latest, created=True)
