"""What the API records about a subscription before any workflow acts on it, under the subscription's row lock.

A cancellation counts from when the API received it: the receipt instant is taken when the request arrives and
the effective term is decided from it, however long the request then waits for the lock. The subscription
workflow re-reads the database under the same lock at each step, so whichever comes first — a commitment at the
notice deadline or a cancellation received before it — the outcome follows the receipt time (a commitment the
workflow wrote while such a cancellation waited for the lock is withdrawn).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import FieldIssue, NotFound
from tessera.models import (
    Cancellation,
    CancellationStatus,
    License,
    LicenseStatus,
    ManagedBy,
    Permission,
    Product,
    Subscription,
    SubscriptionStatus,
    SubscriptionTerm,
    new_id,
)
from tessera.orders import licenses
from tessera.principal import Principal
from tessera.rights import acting
from tessera.rights.locks import lock_rows
from tessera.subscriptions import reads, seats, service
from tessera.subscriptions.creation import record, term_row
from tessera.subscriptions.plans import plan_of
from tessera.subscriptions.refusals import (
    AlreadyRevoked,
    CancellationExists,
    LicenseInSubscription,
    ManagedByErp,
    NothingToUncancel,
    NotRenewing,
    SubscriptionEnded,
    SubscriptionPending,
    UncancelTooLate,
)
from tessera.subscriptions.service import live_cancellation
from tessera.subscriptions.terms import utc


def cancellation_workflow_id(subscription_id: uuid.UUID, n: int) -> str:
    return f"cancellation-{subscription_id}-{n}"


def revocation_workflow_id(target_id: uuid.UUID) -> str:
    return f"revocation-{target_id}"


async def product_of(session: AsyncSession, subscription: Subscription) -> Product:
    product = await session.get(Product, subscription.product_id)
    if product is None:  # pragma: no cover - products are never deleted while ordered
        raise NotFound(f"the product of subscription {subscription.id} no longer exists")
    return product


async def locked(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription:
    """The subscription read again under its row lock, held until the transaction ends."""
    await lock_rows(session, Subscription.__table__, [subscription_id])  # type: ignore[arg-type]
    subscription = await session.get(Subscription, subscription_id, populate_existing=True)
    if subscription is None:  # pragma: no cover - subscriptions are never deleted
        raise NotFound(f"no subscription {subscription_id}")
    return subscription


async def acting_on(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, permission: Permission
) -> Subscription:
    """A visible subscription the caller may act on with `permission`, locked: NotFound, else Forbidden."""
    subscription = (await reads.visible_subscription(session, principal, subscription_id)).subscription
    product = await product_of(session, subscription)
    await acting.authorize(session, principal, permission, product.group_id, subscription.organization_id, quantity=0)
    return await locked(session, subscription_id)


def _cancellable(subscription: Subscription) -> None:
    if subscription.managed_by == ManagedBy.erp:
        raise ManagedByErp("the ERP manages this subscription: it ends it with POST /subscriptions/{id}/terms")
    if subscription.status == SubscriptionStatus.pending:
        raise SubscriptionPending("the subscription has not started (it waits for its first activation): revoke it")
    if subscription.status not in (SubscriptionStatus.active, SubscriptionStatus.non_renewing):
        raise SubscriptionEnded(f"the subscription is {subscription.status}; nothing is left to cancel")


@dataclass(frozen=True)
class EffectiveEnd:
    """When a cancellation takes effect: the end of term `term_no`."""

    term_no: int
    ends_at: datetime
    before_deadline: bool


async def _refuse_if_live(session: AsyncSession, subscription: Subscription) -> None:
    live = await live_cancellation(session, subscription.id)
    if live is not None:
        raise CancellationExists(
            f"cancellation {live.n} is {live.status} already; the subscription ends at "
            f"{utc(live.effective_end_at)} (uncancel it first to cancel anew)"
        )


def effective_end(subscription: Subscription, received_at: datetime) -> EffectiveEnd:
    """Before the notice deadline a cancellation ends the current term, after it the next one."""
    assert subscription.cancel_deadline_at is not None
    assert subscription.term_ends_at is not None
    assert subscription.term_starts_at is not None
    # Received before the current term began: the workflow renewed while the request waited for the lock, and
    # the cancellation then ends the term in force (a renewal that has begun is not undone).
    if received_at < subscription.cancel_deadline_at or received_at < subscription.term_starts_at:
        return EffectiveEnd(subscription.term_no, subscription.term_ends_at, before_deadline=True)
    following = plan_of(subscription).term(subscription.term_no + 1)
    return EffectiveEnd(following.number, following.ends_at, before_deadline=False)


async def cancel_preview(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, now: datetime
) -> EffectiveEnd:
    """What a cancellation received `now` would do, refused as `cancel` would refuse it (nothing is written)."""
    subscription = (await reads.visible_subscription(session, principal, subscription_id)).subscription
    product = await product_of(session, subscription)
    await acting.authorize(
        session, principal, Permission.cancel, product.group_id, subscription.organization_id, quantity=0
    )
    _cancellable(subscription)
    await _refuse_if_live(session, subscription)
    return effective_end(subscription, now)


async def cancel(
    session: AsyncSession,
    principal: Principal,
    subscription_id: uuid.UUID,
    *,
    received_at: datetime,
    reason: str | None = None,
) -> Cancellation:
    """Record the next cancellation; its effective end follows from `received_at` and the notice deadline."""
    subscription = await acting_on(session, principal, subscription_id, Permission.cancel)
    _cancellable(subscription)
    await _refuse_if_live(session, subscription)
    end = effective_end(subscription, received_at)
    in_time, term_no, effective_end_at = end.before_deadline, end.term_no, end.ends_at
    if in_time:
        await _withdraw_commitment(session, subscription, received_at)
    n = subscription.cancellations + 1
    cancellation = Cancellation(
        id=new_id(),
        subscription_id=subscription.id,
        n=n,
        status=CancellationStatus.requested,
        received_at=received_at,
        effective_term_no=term_no,
        effective_end_at=effective_end_at,
        reason=reason or None,
        requested_by_user_id=principal.user_id,
        requested_by_api_key_id=principal.api_key_id,
        workflow_id=cancellation_workflow_id(subscription.id, n),
    )
    session.add(cancellation)
    subscription.cancellations = n
    subscription.status = SubscriptionStatus.non_renewing
    subscription.effective_end_at = effective_end_at
    await session.flush()
    detail = {
        "n": n,
        "received_at": received_at.isoformat(),
        "effective_end_at": effective_end_at.isoformat(),
        "before_deadline": in_time,
    }
    if reason:
        detail["reason"] = reason
    await record(
        session,
        subscription,
        "cancel_requested",
        key=f"{subscription.id}:cancellation:{n}",
        term_no=term_no,
        detail=detail,
        at=received_at,
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
    )
    return cancellation


async def _withdraw_commitment(session: AsyncSession, subscription: Subscription, received_at: datetime) -> None:
    """A renewal committed while a cancellation received in time waited for the lock is no longer binding."""
    following = await term_row(session, subscription.id, subscription.term_no + 1)
    if following is None or following.renewed_at is not None:
        return
    await session.execute(delete(SubscriptionTerm).where(SubscriptionTerm.id == following.id))
    session.expunge(following)
    await record(
        session,
        subscription,
        "commitment_withdrawn",
        key=f"{subscription.id}:commitment-withdrawn:{following.term_no}:{received_at.isoformat()}",
        term_no=following.term_no,
        detail={"reason": "a cancellation was received before the notice deadline"},
    )


async def existing_cancellation(session: AsyncSession, subscription_id: uuid.UUID) -> Cancellation | None:
    """The live cancellation, for a repeated request that may have to start its workflow again."""
    return await live_cancellation(session, subscription_id)


async def uncancel(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, now: datetime
) -> Cancellation:
    """Withdraw the live cancellation before its effective end; the subscription renews again."""
    subscription = await acting_on(session, principal, subscription_id, Permission.cancel)
    live = await live_cancellation(session, subscription.id)
    if live is None:
        raise NothingToUncancel("the subscription has no cancellation to withdraw")
    if now >= live.effective_end_at or subscription.status not in (
        SubscriptionStatus.active,
        SubscriptionStatus.non_renewing,
    ):
        raise UncancelTooLate(f"the cancellation took effect at {utc(live.effective_end_at)}")
    live.status = CancellationStatus.withdrawn
    live.decided_at = now
    subscription.status = SubscriptionStatus.active
    subscription.effective_end_at = None
    await session.flush()
    deadline = subscription.cancel_deadline_at
    if live.effective_term_no == subscription.term_no and deadline is not None and now >= deadline:
        # Past the notice deadline the renewal is binding from the moment the cancellation is withdrawn; the
        # workflow skipped its commitment at the deadline for the cancellation.
        await service.commit(session, subscription.id, subscription.term_no, now)
    await record(
        session,
        subscription,
        "uncancelled",
        key=f"{subscription.id}:cancellation:{live.n}:withdrawn",
        term_no=live.effective_term_no,
        detail={"n": live.n},
        at=now,
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
    )
    return live


@dataclass(frozen=True)
class Revocable:
    """What a revocation is about to end, checked for rights and state."""

    target_id: uuid.UUID
    organization_id: uuid.UUID


async def check_subscription_revocable(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID
) -> Revocable:
    subscription = (await reads.visible_subscription(session, principal, subscription_id)).subscription
    product = await product_of(session, subscription)
    await acting.authorize(session, principal, Permission.revoke, product.group_id, subscription.organization_id)
    if subscription.status == SubscriptionStatus.revoked:
        raise AlreadyRevoked("the subscription is revoked already")
    if subscription.status == SubscriptionStatus.expired:
        raise SubscriptionEnded("the subscription has expired; nothing is left to revoke")
    return Revocable(subscription.id, subscription.organization_id)


async def check_license_revocable(session: AsyncSession, principal: Principal, license_id: uuid.UUID) -> Revocable:
    license, _code, _ticket = await licenses.visible_license(session, principal, license_id)
    product = await session.get(Product, license.product_id)
    assert product is not None
    await acting.authorize(session, principal, Permission.revoke, product.group_id, license.organization_id)
    if license.subscription_id is not None:
        raise LicenseInSubscription(
            f"license {license.id} belongs to subscription {license.subscription_id}, which is revoked as a whole: "
            f"POST /api/v1/subscriptions/{license.subscription_id}/revoke",
            issues=[FieldIssue("subscription_id", str(license.subscription_id))],
        )
    if license.status == LicenseStatus.revoked:
        raise AlreadyRevoked("the license is revoked already")
    return Revocable(license.id, license.organization_id)


async def license_of_revocation(session: AsyncSession, principal: Principal, license_id: uuid.UUID) -> License:
    """A visible license, for the decisions on its revocation."""
    license, _code, _ticket = await licenses.visible_license(session, principal, license_id)
    return license


async def change_quantity(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, quantity: int
) -> Subscription:
    """Ask for `quantity` seats from the next renewal on: more need `create` (and quota), fewer `cancel`."""
    subscription = (await reads.visible_subscription(session, principal, subscription_id)).subscription
    product = await product_of(session, subscription)
    subscription = await locked(session, subscription_id)
    if subscription.status == SubscriptionStatus.non_renewing:
        raise NotRenewing("the subscription is cancelled and has no next renewal; uncancel it first")
    if subscription.status not in (SubscriptionStatus.pending, SubscriptionStatus.active):
        raise SubscriptionEnded(f"the subscription is {subscription.status}; its seats no longer change")
    asked = subscription.next_quantity or subscription.quantity
    # Asking for as many as before is checked like asking for more: it answers only those who could.
    permission = Permission.create if quantity >= asked else Permission.cancel
    await acting.authorize(session, principal, permission, product.group_id, subscription.organization_id, quantity=0)
    if quantity == asked:
        return subscription
    await seats.change_next_quantity(session, subscription, quantity)
    await record(
        session,
        subscription,
        "seats_changed",
        key=f"{subscription.id}:seats:{new_id()}",
        term_no=subscription.term_no or None,
        detail={"from": asked, "to": quantity},
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
    )
    return subscription
