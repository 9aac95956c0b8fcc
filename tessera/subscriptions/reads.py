"""Subscriptions within the caller's reach: vendor administrators see all, administrators their subtree's.

Members see the tickets of a subscription, not the contract: for them a subscription is missing (404), like
anything outside reach.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.models import (
    LIVE_SUBSCRIPTION_STATUSES,
    Cancellation,
    Product,
    Subscription,
    SubscriptionEvent,
    SubscriptionStatus,
    SubscriptionTerm,
)
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach

SCOPE = "subscriptions"
"""The name of the list its cursors belong to."""


@dataclass(frozen=True)
class Listed:
    """A subscription with its product code and its current term's row (none while pending)."""

    subscription: Subscription
    product_code: str
    current: SubscriptionTerm | None


@dataclass(frozen=True)
class Detail(Listed):
    terms: list[SubscriptionTerm]
    cancellations: list[Cancellation]
    events: list[SubscriptionEvent]


def subscription_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `Subscription`: those of the organizations the caller administers, and their subtrees."""
    if principal.vendor_admin:
        return true()
    if not principal.admin_of:
        return false()
    return Subscription.organization_id.in_(reach.subtree_ids(principal.admin_of))


def _with_current_term() -> Select[Subscription, str, SubscriptionTerm]:
    return (
        select(Subscription, Product.code, SubscriptionTerm)
        .join(Product, Product.id == Subscription.product_id)
        .outerjoin(
            SubscriptionTerm,
            and_(
                SubscriptionTerm.subscription_id == Subscription.id,
                SubscriptionTerm.term_no == Subscription.term_no,
            ),
        )
    )


async def list_subscriptions(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    status: SubscriptionStatus | None = None,
    organization_id: uuid.UUID | None = None,
    reseller_id: uuid.UUID | None = None,
    product: str | None = None,
    expiring_before: datetime | None = None,
) -> PageOf[Listed]:
    """Subscriptions within reach, newest first; `organization_id` includes the organizations below it.

    `expiring_before`: live subscriptions that end before that instant if nothing changes — a cancelled one at
    its effective end, any other at the end of its current term (its renewal is due then).
    """
    query = (
        _with_current_term()
        .where(subscription_filter(principal))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    )
    if status is not None:
        query = query.where(Subscription.status == status)
    if organization_id is not None:
        query = query.where(Subscription.organization_id.in_(reach.subtree_ids([organization_id])))
    if reseller_id is not None:
        query = query.where(Subscription.reseller_id == reseller_id)
    if product is not None:
        query = query.where(Product.code == product)
    if expiring_before is not None:
        query = query.where(
            Subscription.status.in_(LIVE_SUBSCRIPTION_STATUSES),
            or_(
                Subscription.effective_end_at < expiring_before,
                and_(Subscription.effective_end_at.is_(None), Subscription.term_ends_at < expiring_before),
            ),
        )
    query = query.where(newest_first_after(cursor, Subscription.created_at, Subscription.id, SCOPE))
    rows = [Listed(row[0], row[1], row[2]) for row in (await session.execute(query.limit(limit + 1))).all()]
    return page_from(rows, limit, key=lambda row: (row.subscription.created_at, row.subscription.id), scope=SCOPE)


async def visible_subscription(session: AsyncSession, principal: Principal, subscription_id: uuid.UUID) -> Listed:
    """The subscription if the caller may see it; NotFound otherwise (missing and out of reach look the same)."""
    row = (
        await session.execute(
            _with_current_term()
            .where(Subscription.id == subscription_id, subscription_filter(principal))
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise NotFound(f"no subscription {subscription_id}")
    return Listed(row[0], row[1], row[2])


async def subscription_detail(session: AsyncSession, principal: Principal, subscription_id: uuid.UUID) -> Detail:
    """The subscription with its terms, cancellations and history, each in order."""
    listed = await visible_subscription(session, principal, subscription_id)
    terms = await session.scalars(
        select(SubscriptionTerm)
        .where(SubscriptionTerm.subscription_id == subscription_id)
        .order_by(SubscriptionTerm.term_no)
    )
    cancellations = await session.scalars(
        select(Cancellation).where(Cancellation.subscription_id == subscription_id).order_by(Cancellation.n)
    )
    events = await session.scalars(
        select(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id == subscription_id)
        .order_by(SubscriptionEvent.at, SubscriptionEvent.id)
    )
    return Detail(
        listed.subscription,
        listed.product_code,
        listed.current,
        terms=list(terms.all()),
        cancellations=list(cancellations.all()),
        events=list(events.all()),
    )
