"""What the order workflow's steps do to the database: each function is idempotent on a business key.

Called by activities, one unit of work each; nothing here knows about Temporal.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, NotFound
from tessera.licenses import codes, tickets
from tessera.licenses.expiry import license_expiry
from tessera.models import (
    Grant,
    License,
    LicenseStatus,
    Membership,
    Order,
    Organization,
    OrganizationKind,
    Permission,
    Product,
    ProductKind,
    Role,
    Subscription,
    SubscriptionStatus,
    Ticket,
    TicketStatus,
    User,
    Visibility,
    new_id,
    utcnow,
)
from tessera.rights import quota
from tessera.rights.reach import path_ids, subtree_ids
from tessera.subscriptions import creation as subscription_creation


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


CHUNK = 500
"""Lines created per transaction: short enough never to hold SQLite's writer for long, big enough to be fast."""


async def create_order_license_chunk(
    session: AsyncSession,
    secret_key: bytes,
    order_id: uuid.UUID,
    after_line: int,
    size: int = CHUNK,
    *,
    now: datetime | None = None,
) -> int:
    """Create the missing lines after `after_line` (at most `size` of them); returns the last line covered.

    One license and one ticket per line. Lines that exist already are kept, so a retry creates nothing more;
    the (order, line number) unique constraint settles a race between two attempts: the loser's transaction
    fails and its retry finds those lines present. The caller commits each chunk and resumes after the line
    returned, so an order of any size is never one long transaction.
    """
    order = await load_order(session, order_id)
    product = await session.get(Product, order.product_id)
    if product is None:
        raise NotFound(f"the product of order {order_id} no longer exists")
    last = min(after_line + size, order.quantity)
    if last <= after_line:
        return order.quantity
    await _require_live_grant(session, order)
    present = set(
        (
            await session.scalars(
                select(License.line_no).where(
                    License.order_id == order.id, License.line_no > after_line, License.line_no <= last
                )
            )
        ).all()
    )
    now = now or utcnow()
    subscription_id: uuid.UUID | None = None
    if product.kind == ProductKind.subscription:
        # The subscription is written with the first lines, in their transaction: its licenses end with its term.
        subscription = await subscription_creation.ensure_for_order(session, order, product, now)
        subscription_id, expires_at = subscription.id, subscription.term_ends_at
    else:
        expires_at = license_expiry(product.code, product.kind, product.expiry, order.fields, now)
    allocated_user = await ordered_user(session, order)
    visibility = order.visibility
    left = await tickets.holder_has_left(session, allocated_user, order.organization_id)
    if left:
        # Ordered for someone who has left since: the tickets go to the organization, for its admins.
        visibility = Visibility.admins_only
    licenses = [
        _license(order, line_no, expires_at, subscription_id)
        for line_no in range(after_line + 1, last + 1)
        if line_no not in present
    ]
    session.add_all(licenses)
    await session.flush()
    # The codes are not kept here: entitled admins show them again from their encrypted copy.
    holder = None if left else allocated_user
    created = [_ticket(secret_key, license, holder, visibility) for license in licenses]
    session.add_all(created)
    await session.flush()
    if left and allocated_user is not None:
        created_ids = select(Ticket.id).where(Ticket.id.in_([ticket.id for ticket in created]))
        await tickets.record_returned(session, created_ids, allocated_user, reason=tickets.LEFT_BEFORE)
    return last


async def add_lines(
    session: AsyncSession,
    secret_key: bytes,
    order: Order,
    line_numbers: range,
    expires_at: datetime | None,
    subscription_id: uuid.UUID | None,
) -> list[License]:
    """More lines for an order after it was fulfilled (a subscription's added seats), each with its ticket.

    Their tickets go to the order's organization, visible as the order asked: whoever held the first tickets by
    name may have left since, and an admin hands the new ones out.
    """
    licenses = [_license(order, line_no, expires_at, subscription_id) for line_no in line_numbers]
    session.add_all(licenses)
    await session.flush()
    session.add_all([_ticket(secret_key, license, None, order.visibility) for license in licenses])
    await session.flush()
    return licenses


async def revoke_licenses(session: AsyncSession, license_ids: Select[uuid.UUID] | list[uuid.UUID]) -> None:
    """Mark licenses (ids, or a select of ids) and their tickets revoked; repeating it changes nothing."""
    await session.execute(
        update(License)
        .where(License.id.in_(license_ids))
        .values(status=LicenseStatus.revoked)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Ticket)
        .where(Ticket.license_id.in_(license_ids))
        .values(status=TicketStatus.revoked)
        .execution_options(synchronize_session=False)
    )


class GrantWithdrawn(Conflict):
    code = "grant-withdrawn"
    title = "Grant withdrawn"


async def _require_live_grant(session: AsyncSession, order: Order) -> None:
    """Licenses are created only while the grant the order was accepted under still allows it.

    An order may wait for approval for days; a grant withdrawn (or stripped of `create`) meanwhile must not
    be used by an approval arriving later. The tree is held until this chunk commits, so a withdrawal comes
    either before (and the order fails, its quota given back) or after the licenses exist.
    """
    if order.grant_id is None:  # ordered by a vendor administrator, who needs no grant
        return
    links = await quota.hold_tree_shared(session, order.grant_id)
    grant = await session.get(Grant, order.grant_id, populate_existing=True)
    if grant is None or not quota.is_live(links):
        raise GrantWithdrawn("the grant this order was accepted under has been withdrawn since")
    if Permission.create not in grant.permissions:
        raise GrantWithdrawn("the grant this order was accepted under no longer allows creating licenses")


def _license(order: Order, line_no: int, expires_at: datetime | None, subscription_id: uuid.UUID | None) -> License:
    return License(
        id=new_id(),
        order_id=order.id,
        line_no=line_no,
        product_id=order.product_id,
        organization_id=order.organization_id,
        fields=order.fields,
        modules=order.modules,
        status=LicenseStatus.active,
        expires_at=expires_at,
        subscription_id=subscription_id,
    )


def _ticket(secret_key: bytes, license: License, user_id: uuid.UUID | None, visibility: str) -> Ticket:
    code = codes.generate_code()
    ticket_id = new_id()
    return Ticket(
        id=ticket_id,
        license_id=license.id,
        code_hash=codes.code_hash(secret_key, code),
        code_encrypted=codes.encrypt_code(secret_key, ticket_id, code),
        organization_id=license.organization_id,
        allocated_user_id=user_id,
        visibility=Visibility(visibility),
        status=TicketStatus.available,
    )


async def count_order_licenses(session: AsyncSession, order_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).where(License.order_id == order_id)) or 0)


async def ordered_user(session: AsyncSession, order: Order, wish: str | None = None) -> uuid.UUID | None:
    """The user the order's tickets go to, or None for its organization.

    A requester who is not a member of the target organization (or a group below it) — a vendor or reseller
    admin ordering for a customer — cannot hold the customer's tickets by name: they go to the organization.
    """
    wish = wish or order.allocation
    if wish == "user":
        return order.allocate_to_user_id
    if wish != "requester" or order.requested_by_user_id is None:
        return None
    member = await session.scalar(
        select(Membership.user_id)
        .where(
            Membership.user_id == order.requested_by_user_id,
            Membership.organization_id.in_(subtree_ids([order.organization_id])),
        )
        .limit(1)
    )
    return order.requested_by_user_id if member is not None else None


async def order_tickets(session: AsyncSession, order_id: uuid.UUID) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket).join(License, License.id == Ticket.license_id).where(License.order_id == order_id)
    )
    return list(rows.all())


async def allocate_order_tickets(session: AsyncSession, order_id: uuid.UUID, to: str) -> int:
    """Allocate every ticket of the order: `requester`, `organization`, `user` (from the order), `as_ordered`."""
    order = await load_order(session, order_id)
    user_id = await ordered_user(session, order, order.allocation if to == "as_ordered" else to)
    values: dict[str, Any] = {"allocated_user_id": user_id, "organization_id": order.organization_id}
    left = await tickets.holder_has_left(session, user_id, order.organization_id)
    if left:
        values = {"allocated_user_id": None, "organization_id": order.organization_id, "visibility": "admins_only"}
    # One UPDATE, not one per ticket: an order may have thousands.
    result = await session.execute(
        update(Ticket)
        .where(Ticket.license_id.in_(select(License.id).where(License.order_id == order_id)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if left and user_id is not None:
        await tickets.record_returned(session, _order_ticket_ids(order_id), user_id, reason=tickets.LEFT_BEFORE)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def set_order_visibility(session: AsyncSession, order_id: uuid.UUID, visible_to: str) -> int:
    order = await load_order(session, order_id)
    value = order.visibility if visible_to == "as_ordered" else visible_to
    # Tickets given back because their holder left stay admins-only, whatever the order asked.
    await session.execute(
        update(Ticket)
        .where(
            Ticket.license_id.in_(select(License.id).where(License.order_id == order_id)),
            Ticket.id.not_in(tickets.returned_ticket_ids_query()),
        )
        .values(visibility=value)
        .execution_options(synchronize_session=False)
    )
    return await count_order_licenses(session, order_id)


def _order_ticket_ids(order_id: uuid.UUID) -> Select[uuid.UUID]:
    return select(Ticket.id).join(License, License.id == Ticket.license_id).where(License.order_id == order_id)


async def revoke_order_licenses(session: AsyncSession, order_id: uuid.UUID) -> list[uuid.UUID]:
    """Revoke every license of a failed order and its ticket; revoking twice changes nothing. Returns their ids."""
    ids = list((await session.scalars(select(License.id).where(License.order_id == order_id))).all())
    # A failed subscription order leaves no live subscription behind (its workflow was never started).
    await session.execute(
        update(Subscription)
        .where(Subscription.order_id == order_id)
        .values(status=SubscriptionStatus.revoked, revoked_at=utcnow(), ended_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    owned = select(License.id).where(License.order_id == order_id)
    await session.execute(
        update(License)
        .where(License.order_id == order_id)
        .values(status=LicenseStatus.revoked)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Ticket)
        .where(Ticket.license_id.in_(owned))
        .values(status=TicketStatus.revoked)
        .execution_options(synchronize_session=False)
    )
    return ids


async def release_order_quota(session: AsyncSession, order_id: uuid.UUID) -> int:
    """Give back the quota reserved at acceptance, minus licenses that exist; once only, whatever the retries."""
    order = await load_order(session, order_id)
    claimed = await session.execute(
        update(Order).where(Order.id == order_id, Order.quota_released_at.is_(None)).values(quota_released_at=utcnow())
    )
    if claimed.rowcount == 0 or order.grant_id is None:  # type: ignore[attr-defined]
        return 0
    # Revoked licenses of a failed order were never delivered: their quota comes back with the rest.
    created = int(
        await session.scalar(
            select(func.count()).where(License.order_id == order_id, License.status != LicenseStatus.revoked)
        )
        or 0
    )
    back = max(order.quantity - created, 0)
    if back:
        await session.execute(
            update(Grant).where(Grant.id == order.grant_id).values(quota_used=Grant.quota_used - back)
        )
    await session.flush()
    return back


async def approvers(
    session: AsyncSession,
    order_id: uuid.UUID,
    approver_set: str | Sequence[str],
    *,
    path: list[uuid.UUID] | None = None,
) -> list[User]:
    """Users who may decide: the named set relative to the order's organization, always with vendor admins.

    `group_admins`: admins of the order's organization, else of its nearest ancestor below the vendor that has
    some; `reseller_admins`: admins of the nearest reseller above it; named e-mails: those users. `path`: the
    order's organization and its ancestors, nearest first, when the caller read them already.
    """
    if path is None:
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
