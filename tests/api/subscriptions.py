"""Helpers for the subscription tests: subscription products in the rights world's CAD group, and subscriptions
made the way the order workflow makes them (its license step, which writes the subscription with the licenses).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.catalog.schema import SubscriptionTerms
from tessera.licenses.fulfilment import create_order_license_chunk
from tessera.models import Grant, License, Order, OrderStatus, Product, Subscription, SubscriptionTerm
from tessera.orders.intake import reserve_quota
from tests.conftest import TEST_SECRET, RightsWorld
from tests.report_world import rewrite_lines

SUBSCRIPTIONS = "/api/v1/subscriptions"
PRODUCTS: dict[str, dict[str, Any]] = {  # code -> subscription settings
    "SUB-CAD": {"term": "P1Y", "notice_period": "P1M"},
    "SUB-CAD-ERP": {"term": "P1Y", "notice_period": "P1M", "managed_by": "erp"},
    "SUB-CAD-ACT": {"term": "P1M", "notice_period": "P7D", "anchor": "first_activation"},
}


async def add_subscription_products(sessions: async_sessionmaker[AsyncSession], world: RightsWorld) -> None:
    async with sessions() as session:
        for code, terms in PRODUCTS.items():
            session.add(
                Product(
                    code=code,
                    group_id=world.group_id,
                    name={"en": code},
                    kind="subscription",
                    container_kinds=["software"],
                    price_amount=Decimal("990.00"),
                    price_currency="EUR",
                    subscription=SubscriptionTerms.model_validate(terms).model_dump(mode="json"),
                )
            )
        await session.commit()


async def give_permissions(
    sessions: async_sessionmaker[AsyncSession], world: RightsWorld, org: str, permissions: list[str]
) -> None:
    """Change what the organization's grant allows (a subset of what it was delegated from)."""
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == world.grants[org]).values(permissions=permissions))
        await session.commit()


@dataclass(frozen=True)
class Made:
    subscription_id: uuid.UUID
    order_id: uuid.UUID
    license_ids: list[uuid.UUID]


async def make_subscription(
    sessions: async_sessionmaker[AsyncSession],
    world: RightsWorld,
    org: str = "C1",
    *,
    product: str = "SUB-CAD",
    quantity: int = 2,
    grant: str | None = "R1",
    requester: str = "reseller_admin",
) -> Made:
    """An order accepted under `grant` (its quota reserved as at acceptance), then its licenses and subscription."""
    async with sessions() as session:
        product_id = await session.scalar(select(Product.id).where(Product.code == product))
        assert product_id is not None
        order = Order(
            organization_id=world.orgs[org],
            product_id=product_id,
            quantity=quantity,
            allocation="organization",
            visibility="all_members",
            status=OrderStatus.approved,
            grant_id=world.grants[grant] if grant else None,
            requested_by_user_id=world.users[requester],
            trail=[],
        )
        session.add(order)
        await session.flush()
        if grant:
            await reserve_quota(session, world.grants[grant], quantity)
        await create_order_license_chunk(session, TEST_SECRET, order.id, 0)
        subscription_id = await session.scalar(select(Subscription.id).where(Subscription.order_id == order.id))
        assert subscription_id is not None
        licenses = (await session.scalars(select(License.id).where(License.order_id == order.id))).all()
        await session.commit()
        return Made(subscription_id, order.id, list(licenses))


async def move_current_term(
    sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, **values: datetime | None
) -> None:
    """Move the current term's instants (e.g. its notice deadline into the past), on the row and its copy."""
    async with sessions() as session:
        subscription = await session.get(Subscription, subscription_id)
        assert subscription is not None
        await session.execute(update(Subscription).where(Subscription.id == subscription_id).values(**values))
        on_row = {key: value for key, value in values.items() if key in ("cancel_deadline_at", "ends_at")}
        if on_row:
            await session.execute(
                update(SubscriptionTerm)
                .where(
                    SubscriptionTerm.subscription_id == subscription_id,
                    SubscriptionTerm.term_no == subscription.term_no,
                )
                .values(on_row)
            )
            await rewrite_lines(session, subscription_id)
        await session.commit()
