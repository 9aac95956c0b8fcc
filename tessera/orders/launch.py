"""What starting an order's workflow needs, built from the stored order: steps, facts, words and ids.

Built at acceptance and again when a start is retried (an order stored while Temporal was unreachable). A
retried start resolves the steps against workflows.yaml as it is then: the workflow starts then, and a
workflow follows the file as it was when it started; `process_version` is updated to match.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import ConfigError, NotFound
from tessera.models import (
    ApiKey,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Product,
    ProductGroup,
    utcnow,
)
from tessera.orders.config import invalid
from tessera.orders.facts import order_context
from tessera.processes import (
    ConditionContext,
    ResolvedProcess,
    resolve_steps,
)
from tessera.processes.schema import WorkflowsConfig
from tessera.rights import reach


@dataclass(frozen=True)
class OrderStart:
    """The input of `LicenseOrderWorkflow` for one order, in Temporal-free terms."""

    order_id: uuid.UUID
    workflow_id: str
    summary: str
    process: ResolvedProcess
    facts: ConditionContext
    organization_id: str
    reseller_id: str | None
    product_code: str


async def order_start(session: AsyncSession, order: Order, config: WorkflowsConfig) -> OrderStart:
    """Resolve the order's steps (overrides by group, product and organization tree) and describe it."""
    row = (
        await session.execute(
            select(Product, ProductGroup.code)
            .join(ProductGroup, ProductGroup.id == Product.group_id)
            .where(Product.id == order.product_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"the product of order {order.id} no longer exists")
    product, group_code = row[0], row[1]
    path = await reach.path_ids(session, order.organization_id)
    organizations = {
        org.id: org for org in (await session.scalars(select(Organization).where(Organization.id.in_(path)))).all()
    }
    organization = organizations[order.organization_id]
    reseller = next((org for org in path if organizations[org].kind == OrganizationKind.reseller), None)
    try:
        process = resolve_steps(
            config,
            "license_order",
            product_group=group_code,
            product=product.code,
            organization_ids=[str(org) for org in path],
        )
    except ConfigError as error:
        raise invalid(error) from None
    requested_by = await _requested_by(session, order, organization)
    facts = await order_context(session, order)
    return OrderStart(
        order_id=order.id,
        workflow_id=order.workflow_id or f"order-{order.id}",
        summary=f"{order.quantity} × {product.code} for organization {organization.id}, requested by {requested_by}",  # noqa: RUF001
        process=process,
        facts=facts,
        organization_id=str(organization.id),
        reseller_id=str(reseller) if reseller is not None else None,
        product_code=product.code,
    )


async def _requested_by(session: AsyncSession, order: Order, organization: Organization) -> str:
    """Who asked, in words for operators, by ids only: Temporal stores memos and summaries unencrypted."""
    if order.requested_by_user_id is not None:
        return f"user {order.requested_by_user_id}"
    key = await session.get(ApiKey, order.requested_by_api_key_id) if order.requested_by_api_key_id else None
    if key is None:
        return "the system"
    return f"the service account key {key.id} of organization {key.organization_id or organization.id}"


async def mark_started(session: AsyncSession, order_id: uuid.UUID, process_version: str) -> None:
    """Record that the workflow runs; only the first of several concurrent starts writes."""
    await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.workflow_started_at.is_(None))
        .values(workflow_started_at=utcnow(), process_version=process_version)
        .execution_options(synchronize_session=False)
    )


async def unstarted_order_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Orders stored while their workflow could not be started, oldest first."""
    rows = await session.scalars(
        select(Order.id)
        .where(Order.workflow_started_at.is_(None), Order.status == OrderStatus.accepted)
        .order_by(Order.created_at, Order.id)
    )
    return list(rows.all())
