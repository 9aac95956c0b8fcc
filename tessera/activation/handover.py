"""The hand-over of a first activation to the subscription that waited for it (`anchor: first_activation`).

The activation's transaction records it (`first_activation`, one row per subscription); the subscription's
workflow anchors the subscription at the recorded instant. Signalling the workflow is only how it learns of the
row early: the API signals after the commit, the worker's relay signals every row that Temporal has not taken
yet, and a workflow that begins after the activation finds the row when it reads its subscription.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation.models import FirstActivation
from tessera.db import insert_once
from tessera.models import Subscription, new_id, utcnow

_table: Table = FirstActivation.__table__  # type: ignore[assignment]


async def record(session: AsyncSession, subscription_id: uuid.UUID, activation_id: uuid.UUID, at: datetime) -> None:
    """Record the first activation unless one is recorded; a concurrent twin waits for the first, then adds none."""
    values = {
        "id": new_id(),
        "subscription_id": subscription_id,
        "activation_id": activation_id,
        "activated_at": at,
        "created_at": utcnow(),
    }
    await insert_once(session, _table, values, unique="subscription_id")


async def first_activated_at(session: AsyncSession, subscription_id: uuid.UUID) -> datetime | None:
    """The recorded first activation's instant, if any."""
    return await session.scalar(
        select(FirstActivation.activated_at).where(FirstActivation.subscription_id == subscription_id)
    )


@dataclass(frozen=True)
class Unsignalled:
    subscription_id: uuid.UUID
    activated_at: datetime
    status: str
    """The subscription's status as read now: a row whose subscription left `pending` needs no signal."""


async def unsignalled(session: AsyncSession, limit: int) -> list[Unsignalled]:
    """The oldest recorded first activations that Temporal has not taken yet."""
    rows = await session.execute(
        select(FirstActivation.subscription_id, FirstActivation.activated_at, Subscription.status)
        .join(Subscription, Subscription.id == FirstActivation.subscription_id)
        .where(FirstActivation.signalled_at.is_(None))
        .order_by(FirstActivation.created_at, FirstActivation.id)
        .limit(limit)
    )
    return [Unsignalled(row[0], row[1], str(row[2])) for row in rows.all()]


async def mark_signalled(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    await session.execute(
        update(FirstActivation)
        .where(FirstActivation.subscription_id == subscription_id, FirstActivation.signalled_at.is_(None))
        .values(signalled_at=utcnow())
    )
