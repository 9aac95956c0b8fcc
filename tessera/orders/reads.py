"""Orders within the caller's reach: an order is visible to whoever sees its organization."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.models import License, Order, OrderStatus, Organization, Product, Ticket
from tessera.orders.licenses import license_filter
from tessera.pagination import PageOf, after_instant, page_from
from tessera.principal import Principal
from tessera.rights import reach


def order_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `Order`: orders of the organizations within reach."""
    if principal.vendor_admin:
        return true()
    return Order.organization_id.in_(select(Organization.id).where(reach.organization_filter(principal)))


def newest_first_after(
    cursor: str | None,
    created_at: SQLColumnExpression[datetime],
    key: SQLColumnExpression[uuid.UUID],
    scope: str = "",
) -> ColumnElement[bool]:
    """Keyset pagination on (created_at, id), newest first; the cursor (of list `scope`) carries both."""
    after = after_instant(cursor, scope)
    if after is None:
        return true()
    at, last = after
    return or_(created_at < at, and_(created_at == at, key < last))


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    status: OrderStatus | None = None,
    organization_id: uuid.UUID | None = None,
) -> PageOf[tuple[Order, str]]:
    """Orders within reach, newest first, with their product codes; `organization_id` includes its subtree."""
    query = (
        select(Order, Product.code)
        .join(Product, Product.id == Order.product_id)
        .where(order_filter(principal))
        .order_by(Order.created_at.desc(), Order.id.desc())
    )
    if status is not None:
        query = query.where(Order.status == status)
    if organization_id is not None:
        query = query.where(Order.organization_id.in_(reach.subtree_ids([organization_id])))
    query = query.where(newest_first_after(cursor, Order.created_at, Order.id, "orders"))
    rows = [(row[0], row[1]) for row in (await session.execute(query.limit(limit + 1))).all()]
    return page_from(rows, limit, key=lambda row: (row[0].created_at, row[0].id), scope="orders")


async def product_code_of(session: AsyncSession, order: Order) -> str:
    """The code of the product an order is for (kept, since products are never deleted while ordered)."""
    return str(await session.scalar(select(Product.code).where(Product.id == order.product_id)))


async def visible_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> tuple[Order, str]:
    row = (
        await session.execute(
            select(Order, Product.code)
            .join(Product, Product.id == Order.product_id)
            .where(Order.id == order_id, order_filter(principal))
        )
    ).first()
    if row is None:
        raise NotFound(f"no order {order_id}")
    return row[0], row[1]


async def order_licenses(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID
) -> list[tuple[License, Ticket | None]]:
    """The order's licenses the caller may see, each with its ticket if the caller may see that."""
    rows = await session.execute(
        select(License, Ticket)
        .outerjoin(Ticket, and_(Ticket.license_id == License.id, reach.ticket_filter(principal)))
        .where(License.order_id == order_id, license_filter(principal))
        .order_by(License.line_no)
    )
    return [(row[0], row[1]) for row in rows.all()]
