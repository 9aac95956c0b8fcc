"""Licenses within reach: administrators see their subtree's; members see those whose ticket they may see."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.models import License, LicenseStatus, Product, Ticket
from tessera.pagination import PageOf, after_id, page_from
from tessera.principal import Principal
from tessera.rights import reach


def license_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `License`: the visibility rule of tickets, applied to the license behind each ticket."""
    if principal.vendor_admin:
        return true()
    clauses = [License.id.in_(select(Ticket.license_id).where(reach.ticket_filter(principal)))]
    if principal.admin_of:
        clauses.append(License.organization_id.in_(reach.subtree_ids(principal.admin_of)))
    return or_(*clauses)


async def list_licenses(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    status: LicenseStatus | None = None,
    order_id: uuid.UUID | None = None,
) -> PageOf[tuple[License, str, Ticket | None]]:
    query = (
        select(License, Product.code, Ticket)
        .join(Product, Product.id == License.product_id)
        .outerjoin(Ticket, Ticket.license_id == License.id)
        .where(license_filter(principal))
        .order_by(License.id)
    )
    if status is not None:
        query = query.where(License.status == status)
    if order_id is not None:
        query = query.where(License.order_id == order_id)
    after = after_id(cursor, "licenses")
    if after is not None:
        query = query.where(License.id > after)
    rows: list[tuple[License, str, Ticket | None]] = [
        (row[0], row[1], row[2]) for row in (await session.execute(query.limit(limit + 1))).all()
    ]
    return page_from(rows, limit, key=lambda row: row[0].id, scope="licenses")


async def visible_license(
    session: AsyncSession, principal: Principal, license_id: uuid.UUID
) -> tuple[License, str, Ticket | None]:
    row = (
        await session.execute(
            select(License, Product.code, Ticket)
            .join(Product, Product.id == License.product_id)
            .outerjoin(Ticket, Ticket.license_id == License.id)
            .where(License.id == license_id, license_filter(principal))
        )
    ).first()
    if row is None:
        raise NotFound(f"no license {license_id}")
    return row[0], row[1], row[2]
