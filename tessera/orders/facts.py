"""An order as the facts conditions and templates see (tessera.processes.facts), read from the database."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.models import Order, Organization, Product, ProductGroup, User
from tessera.processes.facts import (
    ConditionContext,
    FactValue,
    OrderFacts,
    OrganizationFacts,
    ProductFacts,
    RequesterFacts,
)
from tessera.rights.reach import path_ids


def _fact(value: object) -> FactValue:
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


async def order_context(session: AsyncSession, order: Order) -> ConditionContext:
    product = await session.get(Product, order.product_id)
    organization = await session.get(Organization, order.organization_id)
    if product is None or organization is None:
        raise NotFound(f"the product or organization of order {order.id} no longer exists")
    group_code = await session.scalar(select(ProductGroup.code).where(ProductGroup.id == product.group_id))
    requester = await session.get(User, order.requested_by_user_id) if order.requested_by_user_id else None
    return ConditionContext(
        order=OrderFacts(
            id=str(order.id),
            quantity=order.quantity,
            fields={name: _fact(value) for name, value in order.fields.items()},
            modules=list(order.modules),
            external_ref=order.external_ref or "",
            allocation=order.allocation,
            visibility=order.visibility,
        ),
        product=ProductFacts(
            code=product.code,
            group=group_code or "",
            kind=product.kind,
            container_kinds=list(product.container_kinds),
            max_activations=product.max_activations,
            erp_material_no=product.erp_material_no or "",
        ),
        organization=OrganizationFacts(
            id=str(organization.id),
            kind=organization.kind,
            country=organization.country or "",
            erp_customer_no=organization.erp_customer_no or "",
            ancestor_ids=[str(org) for org in (await path_ids(session, organization.id))[1:]],
            fields={name: _fact(value) for name, value in organization.custom_fields.items()},
        ),
        requester=RequesterFacts(
            id=str(requester.id if requester else order.requested_by_api_key_id),
            email=requester.email if requester else "",
            kind="user" if requester else "service_account",
        ),
    )
