"""Writing a subscription and its first term: when an order's licenses are created, or at the first activation.

Idempotent: one subscription per order (unique on the order), one row per term (unique on the term number).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.catalog.schema import AnniversaryAnchor, SubscriptionTerms
from tessera.db import insert_once
from tessera.models import (
    License,
    LicenseStatus,
    ManagedBy,
    Order,
    Organization,
    OrganizationKind,
    Product,
    Subscription,
    SubscriptionEvent,
    SubscriptionStatus,
    SubscriptionTerm,
    TermKind,
    new_id,
    utcnow,
)
from tessera.reports.lines import write_lines
from tessera.rights.reach import path_ids
from tessera.subscriptions.plans import local_date, plan_of, term_covering
from tessera.subscriptions.terms import Term

MAX_IMPORTED_TERMS = 1200
"""A take-over may bring at most this many earlier terms (a century of monthly terms)."""


def workflow_id(subscription_id: uuid.UUID) -> str:
    return f"subscription-{subscription_id}"


async def ensure_for_order(session: AsyncSession, order: Order, product: Product, now: datetime) -> Subscription:
    """The order's subscription, written now if it does not exist yet (a concurrent twin loses on the order)."""
    existing = await session.scalar(select(Subscription).where(Subscription.order_id == order.id))
    if existing is not None:
        return existing
    settings = SubscriptionTerms.model_validate(product.subscription or {})
    path = await path_ids(session, order.organization_id)
    kinds = dict(
        (await session.execute(select(Organization.id, Organization.kind).where(Organization.id.in_(path)))).all()
    )
    organization = await session.get(Organization, order.organization_id)
    assert organization is not None
    reseller = next((org for org in path if kinds.get(org) == OrganizationKind.reseller), None)
    waits_for_activation = settings.anchor == AnniversaryAnchor.first_activation and order.subscription_start is None
    subscription_id = new_id()
    managed_by = ManagedBy(settings.managed_by)
    subscription = Subscription(
        id=subscription_id,
        order_id=order.id,
        product_id=product.id,
        organization_id=order.organization_id,
        reseller_id=reseller,
        status=SubscriptionStatus.pending if waits_for_activation else SubscriptionStatus.active,
        managed_by=managed_by,
        quantity=order.quantity,
        timezone=organization.timezone or "UTC",
        terms=settings.model_dump(mode="json"),
        unit_price=product.price_amount,
        currency=product.price_currency,
        start_date=None
        if waits_for_activation
        else order.subscription_start or local_date(order.created_at, organization.timezone or "UTC"),
        imported_terms=0,
        term_no=0,
        cancellations=0,
        workflow_id=workflow_id(subscription_id) if managed_by == ManagedBy.tessera else None,
    )
    try:
        async with session.begin_nested():
            session.add(subscription)
            await session.flush()
    except IntegrityError:
        found = await session.scalar(select(Subscription).where(Subscription.order_id == order.id))
        assert found is not None
        return found
    await record(session, subscription, "created", key=f"{subscription.id}:created", detail={"order_id": str(order.id)})
    if not waits_for_activation:
        await start_terms(session, subscription, now)
    return subscription


async def start_terms(session: AsyncSession, subscription: Subscription, now: datetime) -> Term:
    """Term 1 (or, for a take-over, the term running now after the earlier ones recorded as imported)."""
    plan = plan_of(subscription)
    current = term_covering(plan, now)
    if current.number - 1 > MAX_IMPORTED_TERMS:
        raise ValueError(f"a take-over brings at most {MAX_IMPORTED_TERMS} earlier terms")
    for term in plan.terms(current.number - 1):
        await add_term(session, subscription, term, TermKind.imported, subscription.quantity)
    subscription.imported_terms = current.number - 1
    await add_term(session, subscription, current, TermKind.first, subscription.quantity)
    await set_current_term(session, subscription, current)
    return current


async def add_term(
    session: AsyncSession,
    subscription: Subscription,
    term: Term,
    kind: TermKind,
    quantity: int,
    *,
    committed_at: datetime | None = None,
    renewed_at: datetime | None = None,
    external_ref: str | None = None,
) -> SubscriptionTerm:
    """The row of `term`, written unless it exists (then returned as it is)."""
    existing = await term_row(session, subscription.id, term.number)
    if existing is not None:
        return existing
    amount = None if term.price is None else term.price * quantity
    row = SubscriptionTerm(
        subscription_id=subscription.id,
        term_no=term.number,
        kind=kind,
        first_day=term.first_day,
        valid_through=term.valid_through,
        starts_at=term.starts_at,
        ends_at=term.ends_at,
        last_day_to_cancel=term.last_day_to_cancel,
        cancel_deadline_at=term.cancel_deadline_at,
        quantity=quantity,
        unit_price=term.price,
        currency=term.currency,
        amount=amount,
        committed_at=committed_at,
        renewed_at=renewed_at,
        external_ref=external_ref,
    )
    session.add(row)
    await session.flush()
    if kind in (TermKind.first, TermKind.erp) or renewed_at is not None:
        await write_lines(session, [row.id])
    return row


async def term_row(session: AsyncSession, subscription_id: uuid.UUID, term_no: int) -> SubscriptionTerm | None:
    return await session.scalar(
        select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == subscription_id, SubscriptionTerm.term_no == term_no
        )
    )


async def set_current_term(session: AsyncSession, subscription: Subscription, term: Term) -> None:
    """Make `term` the current one; its licenses' technical expiry follows (revoked ones stay as they are)."""
    subscription.term_no = term.number
    subscription.term_starts_at = term.starts_at
    subscription.term_ends_at = term.ends_at
    subscription.valid_through = term.valid_through
    subscription.last_day_to_cancel = term.last_day_to_cancel
    subscription.cancel_deadline_at = term.cancel_deadline_at
    await session.execute(
        update(License)
        .where(License.subscription_id == subscription.id, License.status != LicenseStatus.revoked)
        .values(expires_at=term.ends_at)
        .execution_options(synchronize_session=False)
    )
    await session.flush()


async def record(
    session: AsyncSession,
    subscription: Subscription,
    action: str,
    *,
    key: str,
    term_no: int | None = None,
    detail: dict[str, Any] | None = None,
    actor_user_id: uuid.UUID | None = None,
    actor_api_key_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> None:
    """Add to the subscription's history unless an entry with `key` exists (a retried step writes it once)."""
    values = {
        "id": new_id(),
        "key": key,
        "subscription_id": subscription.id,
        "at": at or utcnow(),
        "action": action,
        "term_no": term_no,
        "detail": detail or {},
        "actor_user_id": actor_user_id,
        "actor_api_key_id": actor_api_key_id,
    }
    await insert_once(session, SubscriptionEvent.__table__, values, unique="key")  # type: ignore[arg-type]
