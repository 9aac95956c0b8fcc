"""What the subscription workflows do to the database, each step idempotent on (subscription, term number).

The database is where a cancellation or revocation is recorded first (by the API, under the subscription's row
lock), so every step here re-reads it under the same lock: a cancellation received one second before the
deadline wins over a commitment the workflow is writing at that moment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.licenses import fulfilment
from tessera.models import (
    Cancellation,
    CancellationStatus,
    License,
    LicenseStatus,
    Subscription,
    SubscriptionStatus,
    TermKind,
)
from tessera.reports.lines import write_lines
from tessera.rights.locks import lock_rows
from tessera.subscriptions import seats
from tessera.subscriptions.creation import add_term, record, set_current_term, start_terms, term_row
from tessera.subscriptions.plans import local_date, plan_of
from tessera.subscriptions.terms import Term

LIVE = (SubscriptionStatus.active, SubscriptionStatus.non_renewing)


async def load(session: AsyncSession, subscription_id: uuid.UUID, *, lock: bool = False) -> Subscription:
    if lock:
        await lock_rows(session, Subscription.__table__, [subscription_id])  # type: ignore[arg-type]
    subscription = await session.get(Subscription, subscription_id, populate_existing=lock)
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}")
    return subscription


async def live_cancellation(session: AsyncSession, subscription_id: uuid.UUID) -> Cancellation | None:
    """The cancellation requested or applied now (at most one is live at a time)."""
    return await session.scalar(
        select(Cancellation)
        .where(
            Cancellation.subscription_id == subscription_id,
            Cancellation.status.in_([CancellationStatus.requested, CancellationStatus.applied]),
        )
        .order_by(Cancellation.n.desc())
        .limit(1)
    )


class TermEnd(StrEnum):
    """What happens when a term ends."""

    renew = "renew"
    expire = "expire"
    undecided = "undecided"
    """A cancellation that takes effect now waits for its decision (e.g. an approval)."""
    ended = "ended"
    """Revoked (or expired) already: nothing is left to do."""


@dataclass(frozen=True)
class Snapshot:
    status: SubscriptionStatus
    term: Term | None
    cancellation_term_no: int | None
    """The term at whose end a live cancellation takes effect."""
    cancellation_applied: bool
    committed: bool
    """The renewal after the current term is binding."""


async def snapshot(session: AsyncSession, subscription_id: uuid.UUID) -> Snapshot:
    """The subscription as its workflow needs it at the start of a run, read once and carried in history."""
    subscription = await load(session, subscription_id)
    term = None
    committed = False
    if subscription.start_date is not None and subscription.term_no > 0:
        term = plan_of(subscription).term(subscription.term_no)
        following = await term_row(session, subscription.id, subscription.term_no + 1)
        committed = following is not None and following.committed_at is not None
    cancellation = await live_cancellation(session, subscription.id)
    return Snapshot(
        status=SubscriptionStatus(subscription.status),
        term=term,
        cancellation_term_no=cancellation.effective_term_no if cancellation else None,
        cancellation_applied=cancellation is not None and cancellation.status == CancellationStatus.applied,
        committed=committed,
    )


async def activate(session: AsyncSession, subscription_id: uuid.UUID, activated_at: datetime) -> Snapshot:
    """Fix the anchor of a subscription that waited for its first activation; a second call changes nothing."""
    subscription = await load(session, subscription_id, lock=True)
    if subscription.status == SubscriptionStatus.pending:
        subscription.start_date = plan_anchor(subscription, activated_at)
        subscription.status = SubscriptionStatus.active
        term = await start_terms(session, subscription, activated_at)
        await record(
            session,
            subscription,
            "activated",
            key=f"{subscription.id}:activated",
            term_no=term.number,
            detail={"anchor": subscription.start_date.isoformat(), "activated_at": activated_at.isoformat()},
        )
    return await snapshot(session, subscription_id)


def plan_anchor(subscription: Subscription, activated_at: datetime) -> date:
    """The anniversary anchor an activation fixes: its day in the subscription's time zone."""
    return local_date(activated_at, subscription.timezone)


async def commit(session: AsyncSession, subscription_id: uuid.UUID, term_no: int, at: datetime) -> bool:
    """At the notice deadline of `term_no`: make the next term binding unless a cancellation takes effect first.

    Key: the next term's row (its committed_at is set once). Returns whether the renewal is committed.
    """
    subscription = await load(session, subscription_id, lock=True)
    if subscription.status not in LIVE or subscription.term_no != term_no:
        return False
    cancellation = await live_cancellation(session, subscription_id)
    if cancellation is not None and cancellation.effective_term_no == term_no:
        return False
    following = plan_of(subscription).term(term_no + 1)
    quantity = subscription.next_quantity or subscription.quantity
    row = await add_term(session, subscription, following, TermKind.renewal, quantity, committed_at=at)
    if row.committed_at is None:
        row.committed_at = at
    await record(
        session,
        subscription,
        "committed",
        key=f"{subscription.id}:committed:{term_no + 1}",
        term_no=term_no + 1,
        detail={"valid_through": following.valid_through.isoformat()},
        at=at,
    )
    return True


async def term_end(session: AsyncSession, subscription_id: uuid.UUID, term_no: int) -> TermEnd:
    """At the end of `term_no`: renew, expire, or wait for a cancellation's decision."""
    subscription = await load(session, subscription_id)
    if subscription.status not in LIVE:
        return TermEnd.ended
    if subscription.term_no > term_no:
        return TermEnd.renew  # renewed already (a retried run)
    cancellation = await live_cancellation(session, subscription_id)
    if cancellation is not None and cancellation.effective_term_no == term_no:
        return TermEnd.expire if cancellation.status == CancellationStatus.applied else TermEnd.undecided
    return TermEnd.renew


async def renew(
    session: AsyncSession, secret_key: bytes, subscription_id: uuid.UUID, term_no: int, at: datetime
) -> Term | None:
    """The effective renewal into `term_no`: its row marked renewed, seats adjusted, licenses' expiry moved.

    Key: (subscription, term_no); a second call returns the term and changes nothing. None when the subscription
    ended meanwhile (revoked, or a cancellation applied for this very moment).
    """
    subscription = await load(session, subscription_id, lock=True)
    if subscription.term_no >= term_no:
        return plan_of(subscription).term(term_no)
    if subscription.status not in LIVE or subscription.term_no != term_no - 1:
        return None
    cancellation = await live_cancellation(session, subscription_id)
    if cancellation is not None and cancellation.effective_term_no == term_no - 1:
        return None
    return await _renew_locked(session, secret_key, subscription, term_no, at)


@dataclass(frozen=True)
class TermEndDecision:
    outcome: TermEnd
    term: Term | None = None
    """With `renew`: the term that runs now."""
    cancellation: Cancellation | None = None
    """The live cancellation as read under the lock (none after a renewal it did not stop)."""


async def end_term(
    session: AsyncSession,
    secret_key: bytes,
    subscription_id: uuid.UUID,
    term_no: int,
    at: datetime,
    *,
    renewing: bool = True,
) -> TermEndDecision:
    """The end of `term_no` under one row lock and one read: renew into the next term, or say why not.

    The decision of `term_end` and the work of `renew` (and of `commit` when the notice deadline is the term's
    end, as with a notice of P0D) in one pass, so a renewal herd costs each subscription one read, not three.
    `expire` is left to the caller (rare, and it writes its own event). Idempotent like `renew`. Without
    `renewing` (the process's renew step was skipped) a renewal is decided but not made: `term` stays None.
    """
    subscription = await load(session, subscription_id, lock=True)
    if subscription.status not in LIVE:
        return TermEndDecision(TermEnd.ended)
    cancellation = await live_cancellation(session, subscription_id)
    if subscription.term_no > term_no:  # renewed already (a retried run)
        return TermEndDecision(TermEnd.renew, plan_of(subscription).term(subscription.term_no), cancellation)
    if subscription.term_no != term_no:
        return TermEndDecision(TermEnd.ended)
    if cancellation is not None and cancellation.effective_term_no == term_no:
        applied = cancellation.status == CancellationStatus.applied
        return TermEndDecision(TermEnd.expire if applied else TermEnd.undecided, cancellation=cancellation)
    if not renewing:
        return TermEndDecision(TermEnd.renew, cancellation=cancellation)
    term = await _renew_locked(session, secret_key, subscription, term_no + 1, at)
    return TermEndDecision(TermEnd.renew, term, cancellation)


async def _renew_locked(
    session: AsyncSession, secret_key: bytes, subscription: Subscription, term_no: int, at: datetime
) -> Term:
    """Renew a subscription whose row lock is held and whose renewal was decided."""
    term = plan_of(subscription).term(term_no)
    quantity = subscription.next_quantity or subscription.quantity
    row = await add_term(session, subscription, term, TermKind.renewal, quantity, committed_at=at)
    if quantity != subscription.quantity:
        await seats.resize(session, secret_key, subscription, quantity, term.ends_at)
    row.quantity = quantity
    row.amount = None if row.unit_price is None else row.unit_price * quantity
    if row.committed_at is None or (row.committed_at == at and row.renewed_at is None):
        # Committed by this very renewal (the notice deadline is the term's end): its history says so too.
        await record(
            session,
            subscription,
            "committed",
            key=f"{subscription.id}:committed:{term_no}",
            term_no=term_no,
            detail={"valid_through": term.valid_through.isoformat()},
            at=at,
        )
    row.committed_at = row.committed_at or at
    row.renewed_at = at
    await write_lines(session, [row.id])
    subscription.quantity = quantity
    subscription.next_quantity = None
    await set_current_term(session, subscription, term)
    await record(
        session,
        subscription,
        "renewed",
        key=f"{subscription.id}:renewed:{term_no}",
        term_no=term_no,
        detail={"valid_through": term.valid_through.isoformat(), "quantity": quantity},
        at=at,
    )
    return term


async def expire(session: AsyncSession, subscription_id: uuid.UUID, at: datetime) -> bool:
    """The effective end of a cancelled subscription: it and its licenses expire. Once only."""
    subscription = await load(session, subscription_id, lock=True)
    if subscription.status not in LIVE:
        return False
    subscription.status = SubscriptionStatus.expired
    subscription.ended_at = at
    await seats.release_reserved(session, subscription)
    subscription.next_quantity = None
    await session.execute(
        update(License)
        .where(License.subscription_id == subscription.id, License.status == LicenseStatus.active)
        .values(status=LicenseStatus.expired)
        .execution_options(synchronize_session=False)
    )
    await record(
        session, subscription, "expired", key=f"{subscription.id}:expired", term_no=subscription.term_no, at=at
    )
    return True


async def revoke(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    at: datetime,
    *,
    reason: str = "",
    actor_user_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """End the subscription at once: it, its licenses and their tickets are revoked. Returns the licenses' ids."""
    subscription = await load(session, subscription_id, lock=True)
    license_ids = list(
        (await session.scalars(select(License.id).where(License.subscription_id == subscription.id))).all()
    )
    if subscription.status == SubscriptionStatus.revoked:
        return license_ids
    subscription.status = SubscriptionStatus.revoked
    subscription.revoked_at = at
    subscription.ended_at = at
    await seats.release_reserved(session, subscription)
    subscription.next_quantity = None
    await fulfilment.revoke_licenses(session, select(License.id).where(License.subscription_id == subscription.id))
    await record(
        session,
        subscription,
        "revoked",
        key=f"{subscription.id}:revoked",
        term_no=subscription.term_no,
        detail={"reason": reason} if reason else {},
        actor_user_id=actor_user_id,
        at=at,
    )
    return license_ids
