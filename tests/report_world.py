"""A small world of subscriptions with their terms written straight into the database, for the report tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.models import (
    Order,
    Organization,
    Product,
    ProductGroup,
    Subscription,
    SubscriptionStatus,
    SubscriptionTerm,
    TermKind,
)
from tessera.reports.lines import write_lines
from tessera.subscriptions.calendar import add_months, local_midnight

ZONE = "Europe/Berlin"
CMD = "=cmd|' /C calc'!A0"
"""C3's name: what a spreadsheet would run if a CSV cell started with it unchanged."""


@dataclass
class ReportWorld:
    """vendor V (Europe/Berlin) ─┬─ R1 (reseller, ERP R-1) ── C1 (customer, ERP C-1) ── G1 (group)
    ├─ R2 (reseller, ERP R-2) ── C3 (customer, ERP C-3, named like a formula)
    └─ D (customer bought directly)"""

    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    product_id: uuid.UUID = field(default_factory=uuid.uuid4)


def at(day: date) -> datetime:
    return local_midnight(day, ZoneInfo(ZONE))


async def build_report_world(session: AsyncSession) -> ReportWorld:
    world = ReportWorld()
    for name, kind, parent, erp in (
        ("V", "vendor", None, None),
        ("R1", "reseller", "V", "R-1"),
        ("C1", "customer", "R1", "C-1"),
        ("G1", "group", "C1", None),
        ("R2", "reseller", "V", "R-2"),
        ("C3", "customer", "R2", "C-3"),
        ("D", "customer", "V", "D-1"),
    ):
        org = Organization(
            kind=kind,
            parent_id=world.orgs[parent] if parent else None,
            name=CMD if name == "C3" else name,
            erp_customer_no=erp,
            timezone=ZONE,
            custom_fields={},
        )
        session.add(org)
        await session.flush()
        world.orgs[name] = org.id
    group = ProductGroup(code="CAD", name={"en": "CAD"})
    session.add(group)
    await session.flush()
    session.add(
        Product(
            id=world.product_id,
            code="SUB-CAD",
            group_id=group.id,
            name={"en": "CAD subscription"},
            kind="subscription",
            erp_material_no="MAT-100",
            container_kinds=["software"],
            price_amount=Decimal("120.00"),
            price_currency="EUR",
            subscription={"term": "P1M"},
        )
    )
    await session.flush()
    return world


async def add_subscription(
    session: AsyncSession,
    world: ReportWorld,
    organization: str,
    start: date,
    terms: int,
    *,
    reseller: str | None = "R1",
    price: str = "120.00",
    currency: str = "EUR",
    quantity: int = 2,
    status: SubscriptionStatus = SubscriptionStatus.active,
    external_ref: str | None = None,
) -> uuid.UUID:
    """A monthly subscription from `start` with `terms` terms written (the last one running), as renewals leave it."""
    order = Order(
        organization_id=world.orgs[organization],
        product_id=world.product_id,
        quantity=quantity,
        allocation="organization",
        visibility="all_members",
        status="fulfilled",
        external_ref=external_ref,
    )
    session.add(order)
    await session.flush()
    unit = Decimal(price)
    subscription = Subscription(
        order_id=order.id,
        product_id=world.product_id,
        organization_id=world.orgs[organization],
        reseller_id=world.orgs[reseller] if reseller else None,
        status=status,
        quantity=quantity,
        timezone=ZONE,
        terms={"term": "P1M"},
        unit_price=unit,
        currency=currency,
        start_date=None if status == SubscriptionStatus.pending else start,
        term_no=0 if status == SubscriptionStatus.pending else terms,
    )
    session.add(subscription)
    await session.flush()
    if status == SubscriptionStatus.pending:
        return subscription.id
    for number in range(1, terms + 1):
        first = add_months(start, number - 1)
        end = add_months(start, number)
        starts_at = at(first)
        session.add(
            SubscriptionTerm(
                subscription_id=subscription.id,
                term_no=number,
                kind=TermKind.first if number == 1 else TermKind.renewal,
                first_day=first,
                valid_through=end - timedelta(days=1),
                starts_at=starts_at,
                ends_at=at(end),
                quantity=quantity,
                unit_price=unit,
                currency=currency,
                amount=unit * quantity,
                committed_at=None if number == 1 else starts_at - timedelta(days=10),
                renewed_at=None if number == 1 else starts_at,
            )
        )
    await rewrite_lines(session, subscription.id)
    return subscription.id


async def rewrite_lines(session: AsyncSession, subscription_id: uuid.UUID | None = None) -> None:
    """The billing lines of the world's terms (of one subscription, or all), as the services write them; called
    again after a test edits terms behind the services' back."""
    await session.flush()
    query = select(SubscriptionTerm.id)
    if subscription_id is not None:
        query = query.where(SubscriptionTerm.subscription_id == subscription_id)
    await write_lines(session, list((await session.scalars(query)).all()))


def utc(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)
