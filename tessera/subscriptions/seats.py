"""Seats of a subscription: a quantity change waits for the next renewal, with its quota held in the meantime.

More seats reserve quota on the order's grant when they are asked for (so the renewal cannot fail for quota) and
become licenses and tickets at the renewal. Fewer seats revoke the surplus at the renewal, licenses whose tickets
are not activated first, and give their quota back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.licenses import fulfilment
from tessera.models import Grant, License, LicenseStatus, Order, Subscription, Ticket, TicketStatus
from tessera.orders.intake import reserve_quota


def reserved_extra(subscription: Subscription) -> int:
    """Seats asked for beyond the current quantity: quota already reserved for the next renewal."""
    return max((subscription.next_quantity or subscription.quantity) - subscription.quantity, 0)


async def change_next_quantity(session: AsyncSession, subscription: Subscription, quantity: int) -> None:
    """Ask for `quantity` seats from the next renewal on; the caller holds the subscription's lock."""
    order = await fulfilment.load_order(session, subscription.order_id)
    before = reserved_extra(subscription)
    after = max(quantity - subscription.quantity, 0)
    if order.grant_id is not None and after > before:
        await reserve_quota(session, order.grant_id, after - before)
    elif order.grant_id is not None and after < before:
        await _give_back(session, order, before - after)
    subscription.next_quantity = None if quantity == subscription.quantity else quantity
    await session.flush()


async def release_reserved(session: AsyncSession, subscription: Subscription) -> None:
    """A subscription that ends before its next renewal gives back the quota held for more seats."""
    extra = reserved_extra(subscription)
    if extra:
        order = await fulfilment.load_order(session, subscription.order_id)
        await _give_back(session, order, extra)


async def resize(
    session: AsyncSession, secret_key: bytes, subscription: Subscription, quantity: int, expires_at: datetime
) -> None:
    """Create or revoke licenses so the subscription has `quantity` live ones; called once, at its renewal."""
    order = await fulfilment.load_order(session, subscription.order_id)
    live = select(License.id).where(License.subscription_id == subscription.id, License.status != LicenseStatus.revoked)
    count = int(await session.scalar(select(func.count()).select_from(live.subquery())) or 0)
    if quantity > count:
        last_line = int(
            await session.scalar(select(func.max(License.line_no)).where(License.order_id == order.id)) or 0
        )
        await fulfilment.add_lines(
            session,
            secret_key,
            order,
            range(last_line + 1, last_line + 1 + quantity - count),
            expires_at,
            subscription.id,
        )
    elif quantity < count:
        activated_last = case((Ticket.status == TicketStatus.activated, 1), else_=0)
        surplus = (
            await session.scalars(
                select(License.id)
                .join(Ticket, Ticket.license_id == License.id)
                .where(License.subscription_id == subscription.id, License.status != LicenseStatus.revoked)
                .order_by(activated_last, License.line_no.desc())
                .limit(count - quantity)
            )
        ).all()
        await fulfilment.revoke_licenses(session, list(surplus))
        await _give_back(session, order, len(surplus))


async def _give_back(session: AsyncSession, order: Order, seats: int) -> None:
    if order.grant_id is None or seats <= 0:
        return
    await session.execute(
        update(Grant)
        .where(Grant.id == order.grant_id)
        .values(quota_used=Grant.quota_used - seats)
        .execution_options(synchronize_session=False)
    )
