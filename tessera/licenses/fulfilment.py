"""What the order workflow's steps do to the database: each function is idempotent on a business key.

Called by activities, one unit of work each; nothing here knows about Temporal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.licenses.tickets import create_ticket, hand_to, returned_ticket_ids
from tessera.models import (
    Grant,
    License,
    LicenseStatus,
    Membership,
    Order,
    Organization,
    OrganizationKind,
    Product,
    ProductKind,
    Role,
    Ticket,
    User,
    Visibility,
    utcnow,
)
from tessera.rights.reach import path_ids


async def load_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


async def record_progress(session: AsyncSession, order_id: uuid.UUID, status: str, trail: list[dict[str, Any]]) -> None:
    """Mirror the workflow's state; writing the same state twice changes nothing."""
    order = await load_order(session, order_id)
    order.status = status
    order.trail = trail
    await session.flush()


def _expiry(product: Product, order: Order) -> Any:
    # Trials run for the chosen number of days from creation; subscriptions get theirs from their terms.
    if product.kind == ProductKind.trial and isinstance(order.fields.get("trial_days"), int):
        return utcnow() + timedelta(days=order.fields["trial_days"])
    return None


async def create_order_licenses(
    session: AsyncSession, secret_key: bytes, order_id: uuid.UUID, progress: Callable[[int], None] = lambda _: None
) -> list[License]:
    """One license and one ticket per unit; lines that exist already are kept, so a retry creates nothing more.

    The (order, line number) unique constraint settles a race between two attempts: the loser's transaction
    fails and its retry finds every line present.
    """
    order = await load_order(session, order_id)
    product = await session.get(Product, order.product_id)
    if product is None:
        raise NotFound(f"the product of order {order_id} no longer exists")
    existing = {
        lic.line_no: lic for lic in (await session.scalars(select(License).where(License.order_id == order.id))).all()
    }
    allocated_user = _ordered_user(order)
    for line_no in range(1, order.quantity + 1):
        if line_no in existing:
            continue
        license = License(
            order_id=order.id,
            line_no=line_no,
            product_id=order.product_id,
            organization_id=order.organization_id,
            fields=order.fields,
            modules=order.modules,
            status=LicenseStatus.active,
            expires_at=_expiry(product, order),
        )
        session.add(license)
        await session.flush()
        # The code is not kept here: entitled admins show it again from its encrypted copy.
        await create_ticket(
            session,
            secret_key,
            license,
            allocated_user_id=allocated_user,
            visibility=Visibility(order.visibility),
        )
        existing[line_no] = license
        progress(line_no)
    return [existing[number] for number in sorted(existing)]


def _ordered_user(order: Order) -> uuid.UUID | None:
    if order.allocation == "user":
        return order.allocate_to_user_id
    if order.allocation == "requester":
        return order.requested_by_user_id
    return None


async def order_tickets(session: AsyncSession, order_id: uuid.UUID) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket).join(License, License.id == Ticket.license_id).where(License.order_id == order_id)
    )
    return list(rows.all())


async def allocate_order_tickets(session: AsyncSession, order_id: uuid.UUID, to: str) -> int:
    """Allocate every ticket of the order: `requester`, `organization`, `user` (from the order), `as_ordered`."""
    order = await load_order(session, order_id)
    wish = order.allocation if to == "as_ordered" else to
    user_id = {"requester": order.requested_by_user_id, "user": order.allocate_to_user_id}.get(wish)
    tickets = await order_tickets(session, order_id)
    for ticket in tickets:
        ticket.organization_id = order.organization_id
        await hand_to(session, ticket, user_id)
    await session.flush()
    return len(tickets)


async def set_order_visibility(session: AsyncSession, order_id: uuid.UUID, visible_to: str) -> int:
    order = await load_order(session, order_id)
    value = order.visibility if visible_to == "as_ordered" else visible_to
    tickets = await order_tickets(session, order_id)
    kept_for_admins = await returned_ticket_ids(session, [ticket.id for ticket in tickets])
    for ticket in tickets:
        if ticket.id not in kept_for_admins:
            ticket.visibility = value
    await session.flush()
    return len(tickets)


async def release_order_quota(session: AsyncSession, order_id: uuid.UUID) -> int:
    """Give back the quota reserved at acceptance, minus licenses that exist; once only, whatever the retries."""
    order = await load_order(session, order_id)
    claimed = await session.execute(
        update(Order).where(Order.id == order_id, Order.quota_released_at.is_(None)).values(quota_released_at=utcnow())
    )
    if claimed.rowcount == 0 or order.grant_id is None:  # type: ignore[attr-defined]
        return 0
    created = len((await session.scalars(select(License.id).where(License.order_id == order_id))).all())
    back = max(order.quantity - created, 0)
    if back:
        await session.execute(
            update(Grant).where(Grant.id == order.grant_id).values(quota_used=Grant.quota_used - back)
        )
    await session.flush()
    return back


async def approvers(session: AsyncSession, order_id: uuid.UUID, approver_set: str | Sequence[str]) -> list[User]:
    """Users who may decide: the named set relative to the order's organization, always with vendor admins.

    `group_admins`: admins of the order's organization, else of its nearest ancestor below the vendor that has
    some; `reseller_admins`: admins of the nearest reseller above it; named e-mails: those users.
    """
    order = await load_order(session, order_id)
    path = await path_ids(session, order.organization_id)
    kinds = dict(
        (await session.execute(select(Organization.id, Organization.kind).where(Organization.id.in_(path)))).all()
    )
    admins_by_org: dict[uuid.UUID, list[uuid.UUID]] = {}
    for org_id, user_id in (
        await session.execute(
            select(Membership.organization_id, Membership.user_id).where(
                Membership.organization_id.in_(path), Membership.role == Role.admin
            )
        )
    ).all():
        admins_by_org.setdefault(org_id, []).append(user_id)
    vendor = [org for org in path if kinds.get(org) == OrganizationKind.vendor]
    chosen: set[uuid.UUID] = {user for org in vendor for user in admins_by_org.get(org, [])}
    if isinstance(approver_set, str) and approver_set == "group_admins":
        below_vendor = [org for org in path if kinds.get(org) != OrganizationKind.vendor]
        nearest = next((org for org in below_vendor if admins_by_org.get(org)), None)
        chosen |= set(admins_by_org.get(nearest, [])) if nearest else set()
    elif isinstance(approver_set, str) and approver_set == "reseller_admins":
        reseller = next((org for org in path if kinds.get(org) == OrganizationKind.reseller), None)
        chosen |= set(admins_by_org.get(reseller, [])) if reseller else set()
    elif not isinstance(approver_set, str):
        emails = [email.lower() for email in approver_set]
        chosen |= set((await session.scalars(select(User.id).where(User.email.in_(emails)))).all())
    users = (await session.scalars(select(User).where(User.id.in_(chosen)).order_by(User.email))).all()
    return list(users)


async def order_licenses(session: AsyncSession, order_id: uuid.UUID) -> list[License]:
    rows = await session.scalars(select(License).where(License.order_id == order_id).order_by(License.line_no))
    return list(rows.all())
