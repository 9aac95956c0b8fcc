"""A subscription changing reseller: recorded with the instant, so reports attribute each day to its seller.

Organizations that hold subscriptions never move in the tree, so this is the one way a subscription's reseller
changes (e.g. a customer transferred to another sales partner by the vendor). Renewals count for the reseller at
the start of their term, active subscriptions for the reseller at local 00:00 of day D.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import Organization, OrganizationKind, Subscription
from tessera.reports.models import ResellerChange
from tessera.rights.locks import lock_rows

SINCE_EVER = datetime(1970, 1, 1, tzinfo=UTC)
"""When the reseller a subscription had before its first change began selling it: from its start, whenever."""


async def change_reseller(
    session: AsyncSession, subscription_id: uuid.UUID, reseller_id: uuid.UUID | None, at: datetime
) -> None:
    """From `at` on, `reseller_id` (None: the vendor directly) sells the subscription; flushes, never commits."""
    await lock_rows(session, Subscription.__table__, [subscription_id])  # type: ignore[arg-type]
    subscription = await session.get(Subscription, subscription_id, populate_existing=True)
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}")
    if reseller_id is not None:
        kind = await session.scalar(select(Organization.kind).where(Organization.id == reseller_id))
        if kind != OrganizationKind.reseller:
            raise InvalidInput("no such reseller", issues=[FieldIssue("reseller_id", "not a reseller")])
    latest = await session.scalar(
        select(ResellerChange.at)
        .where(ResellerChange.subscription_id == subscription_id)
        .order_by(ResellerChange.at.desc())
        .limit(1)
    )
    if latest is None:
        session.add(ResellerChange(subscription_id=subscription_id, reseller_id=subscription.reseller_id,
                                   at=SINCE_EVER))  # fmt: skip
    elif latest >= at:
        raise InvalidInput(
            "a later reseller change is recorded", issues=[FieldIssue("at", f"after {latest.isoformat()}")]
        )
    session.add(ResellerChange(subscription_id=subscription_id, reseller_id=reseller_id, at=at))
    subscription.reseller_id = reseller_id
    await session.flush()
