"""A grant's remaining quota — one formula — and the lock that keeps *used + delegated <= quota* under races.

remaining = quota - used - (quota of the live grants delegated from it); none when the quota is unlimited.

Every write that can move a grant's remaining quota or the liveness of its chain (an order's reservation, a
delegation, a change, a withdrawal) first locks the *root* of the grant's delegation tree, then reads and
writes. So the writers of one tree take turns, each sees what the one before committed, and a check can never
go stale before its write. Orders that only give quota back (rejection, failure) need no lock: they can only
make room.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, func, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tessera.models import Grant
from tessera.rights.locks import is_sqlite, lock_rows

QUOTA_MAX = 2**31 - 1
"""The largest quota the column holds (a 32-bit integer on PostgreSQL); larger ones are refused as input."""


def delegated_of(
    grant_id: ColumnElement[uuid.UUID] | uuid.UUID, *, excluding: uuid.UUID | None = None
) -> ColumnElement[int]:
    """Quota carved out of a grant by the live grants delegated from it (optionally leaving one out)."""
    child = aliased(Grant)
    query = select(func.coalesce(func.sum(child.quota), 0)).where(
        child.parent_grant_id == grant_id, child.withdrawn_at.is_(None)
    )
    if excluding is not None:
        query = query.where(child.id != excluding)
    return query.scalar_subquery()


def remaining_of(
    *, proposed: int | None = None, excluding: uuid.UUID | None = None, delegating: bool = True
) -> ColumnElement[int | None]:
    """The formula, as SQL over `Grant`: what it may still create or delegate; NULL when unlimited.

    `proposed` evaluates it for a new quota instead of the stored one; `excluding` leaves one delegated grant
    out (the one being changed); `delegating=False` counts nothing delegated (the grant stops being delegable,
    and what it delegated goes with it).
    """
    limit: ColumnElement[int | None] = Grant.quota.expression if proposed is None else literal(proposed, Integer)
    delegated: ColumnElement[int] = delegated_of(Grant.id.expression, excluding=excluding) if delegating else literal(0)
    return case((limit.is_(None), null()), else_=limit - Grant.quota_used - delegated)


async def remaining_quota(
    session: AsyncSession,
    grant_id: uuid.UUID,
    *,
    proposed: int | None = None,
    excluding: uuid.UUID | None = None,
    delegating: bool = True,
) -> int | None:
    """`remaining_of` for one grant, read now."""
    formula = remaining_of(proposed=proposed, excluding=excluding, delegating=delegating)
    value = await session.scalar(select(formula).where(Grant.id == grant_id))
    return None if value is None else int(value)


@dataclass(frozen=True)
class Link:
    id: uuid.UUID
    parent_id: uuid.UUID | None
    live: bool


async def chain(session: AsyncSession, grant_id: uuid.UUID) -> list[Link]:
    """`[grant, the grant it was delegated from, ..., root]` in one recursive query."""
    up = (
        select(Grant.id, Grant.parent_grant_id, Grant.withdrawn_at, literal(0).label("depth"))
        .where(Grant.id == grant_id)
        .cte("chain", recursive=True)
    )
    up = up.union_all(
        select(Grant.id, Grant.parent_grant_id, Grant.withdrawn_at, (up.c.depth + 1).label("depth")).where(
            Grant.id == up.c.parent_grant_id, up.c.depth < 64
        )
    )
    rows = (await session.execute(select(up.c.id, up.c.parent_grant_id, up.c.withdrawn_at).order_by(up.c.depth))).all()
    return [Link(id=row[0], parent_id=row[1], live=row[2] is None) for row in rows]


def is_live(links: list[Link]) -> bool:
    """A grant is usable only while every grant it came from is: withdrawal cascades, this re-checks."""
    return bool(links) and all(link.live for link in links) and links[-1].parent_id is None


async def lock_tree(session: AsyncSession, grant_id: uuid.UUID) -> list[Link]:
    """Lock the root of `grant_id`'s delegation tree and return its chain as read under that lock.

    The root is found before the lock and confirmed after it: a grant's parent changes only when a withdrawn
    grant is granted again, so a second look settles it.
    """
    links = await chain(session, grant_id)
    for _attempt in range(3):
        if not links:
            return links
        root = links[-1].id
        await lock_rows(session, Grant.__table__, [root])  # type: ignore[arg-type]
        links = await chain(session, grant_id)
        if links and links[-1].id == root:
            return links
    return links


async def hold_tree_shared(session: AsyncSession, grant_id: uuid.UUID) -> list[Link]:
    """Like `lock_tree`, but shared: users of a grant (license creation) run side by side, while a change or a
    withdrawal of the tree waits for them (and they for it), so what they read stays true until they commit."""
    if is_sqlite(session):
        return await lock_tree(session, grant_id)  # one writer anyway: taking it is the lock
    links = await chain(session, grant_id)
    for _attempt in range(3):
        if not links:
            return links
        root = links[-1].id
        await session.execute(select(Grant.id).where(Grant.id == root).with_for_update(read=True))
        links = await chain(session, grant_id)
        if links and links[-1].id == root:
            return links
    return links


@dataclass(frozen=True)
class Reservation:
    reserved: bool
    live: bool
    left: int | None
    """What the grant has left, when the reservation was refused for quota."""


async def reserve(session: AsyncSession, grant_id: uuid.UUID, quantity: int) -> Reservation:
    """Count `quantity` licenses against a live grant, under its tree's lock and in one conditional UPDATE."""
    live = is_live(await lock_tree(session, grant_id))
    if not live:
        return Reservation(reserved=False, live=False, left=None)
    result = await session.execute(
        update(Grant)
        .where(
            Grant.id == grant_id,
            Grant.withdrawn_at.is_(None),
            func.coalesce(remaining_of(), quantity) >= quantity,
        )
        .values(quota_used=Grant.quota_used + quantity)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        # The ORM copy (if loaded) must not show the old count to whoever reads it next in this transaction.
        await session.get(Grant, grant_id, populate_existing=True)
        return Reservation(reserved=True, live=True, left=None)
    return Reservation(reserved=False, live=True, left=await remaining_quota(session, grant_id))
