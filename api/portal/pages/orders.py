"""Orders: the list the API's `GET /orders` gives this person, and one order with its status, trail and tickets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Page, SignedInPage
from api.portal.render import render
from api.portal.routing import PortalRoute
from tessera.models import OrderStatus, Organization, User
from tessera.orders import reads
from tessera.principal import Principal
from tessera.rights import reach

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

PAGE_SIZE = 50
FINAL = {OrderStatus.fulfilled.value, OrderStatus.rejected.value, OrderStatus.failed.value}


def _principal(page: Page) -> Principal:
    assert page.viewer is not None
    return page.viewer.principal


async def organization_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of organizations whose orders the viewer sees (so the organizations are within reach)."""
    if not ids:
        return {}
    rows = await session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids)))
    return {row[0]: row[1] for row in rows.all()}


async def people_names(session: AsyncSession, principal: Principal, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of the people among `ids` whom the viewer reaches; the others stay unnamed."""
    if not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.name, User.email).where(User.id.in_(ids), reach.user_filter(principal))
    )
    return {row[0]: row[1] or row[2] for row in rows.all()}


@router.get("/orders")
async def list_orders(
    page: SignedInPage,
    session: Session,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    status: OrderStatus | None = None,
) -> Response:
    """The orders of the organizations within my reach, newest first."""
    found = await reads.list_orders(session, _principal(page), limit=PAGE_SIZE, cursor=cursor, status=status)
    orders = [order for order, _code in found.items]
    organizations = await organization_names(session, {order.organization_id for order in orders})
    return render(
        page,
        "portal/orders/list.html",
        nav="orders",
        rows=found.items,
        organizations=organizations,
        next_cursor=found.next_cursor,
        chosen_status=status.value if status else "",
        statuses=[value.value for value in OrderStatus],
    )


async def _order_context(page: Page, session: AsyncSession, order_id: uuid.UUID) -> dict[str, Any]:
    principal = _principal(page)
    order, code = await reads.visible_order(session, principal, order_id)
    licenses = await reads.order_licenses(session, principal, order.id)
    organizations = await organization_names(session, {order.organization_id})
    wanted = {ticket.allocated_user_id for _license, ticket in licenses if ticket and ticket.allocated_user_id}
    if order.requested_by_user_id:
        wanted.add(order.requested_by_user_id)
    people = await people_names(session, principal, wanted)
    return {
        "order": order,
        "product_code": code,
        "licenses": licenses,
        "organization_name": organizations.get(order.organization_id, ""),
        "requester": people.get(order.requested_by_user_id) if order.requested_by_user_id else None,
        "people": people,
        "trail": [_entry(entry) for entry in order.trail],
        "final": order.status in FINAL,
    }


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A trail entry as mirrored (JSON), with its instant read back for display in the viewer's zone."""
    at = entry.get("at")
    try:
        when = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        when = None
    return {**entry, "at": when}


@router.get("/orders/{order_id}")
async def show_order(page: SignedInPage, session: Session, order_id: uuid.UUID) -> Response:
    """One order: status, the steps so far and, once fulfilled, its tickets."""
    return render(page, "portal/orders/show.html", nav="orders", **await _order_context(page, session, order_id))


@router.get("/orders/{order_id}/status")
async def order_status(page: SignedInPage, session: Session, order_id: uuid.UUID) -> Response:
    """The order's status block alone (the order page refreshes it until the order is decided)."""
    return render(page, "portal/orders/status.html", **await _order_context(page, session, order_id))
