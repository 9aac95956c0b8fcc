"""The acting rule: may this caller do permission P on product group G for organization T, and under which grant.

The caller must administer some A that is T or an ancestor of T, and the nearest organization on the
way from T up to A that holds a grant on G decides; its grant must carry P, be live all the way up its
delegation chain and, for `create`, have quota left. Vendor administrators hold everything.

This is the check made when a request arrives; whatever writes on its strength (an order's reservation)
re-checks under the lock of `tessera.rights.quota`, so a grant withdrawn meanwhile is never used.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Forbidden
from tessera.models import Grant, Permission
from tessera.principal import Principal
from tessera.rights import quota, reach


@dataclass(frozen=True)
class ActingRight:
    """Why the caller may act: the grant used (to record on the order), or None for a vendor administrator."""

    organization_id: uuid.UUID
    grant: Grant | None


def require_vendor_admin(principal: Principal, *, doing: str) -> None:
    if not principal.vendor_admin:
        raise Forbidden(f"only vendor administrators may {doing}")


async def live_grants(
    session: AsyncSession, organization_ids: list[uuid.UUID], product_group_id: uuid.UUID
) -> dict[uuid.UUID, Grant]:
    rows = await session.scalars(
        select(Grant)
        .where(
            Grant.organization_id.in_(organization_ids),
            Grant.product_group_id == product_group_id,
            Grant.withdrawn_at.is_(None),
        )
        # Read again under a lock, so the copies in the session must be replaced, not reused.
        .execution_options(populate_existing=True)
    )
    return {grant.organization_id: grant for grant in rows.all()}


async def chain_is_live(session: AsyncSession, grant: Grant) -> bool:
    """A delegated grant is usable only while every grant it came from is; withdrawal cascades, this re-checks."""
    return quota.is_live(await quota.chain(session, grant.id))


async def authorize(
    session: AsyncSession,
    principal: Principal,
    permission: Permission,
    product_group_id: uuid.UUID,
    organization_id: uuid.UUID,
    *,
    quantity: int = 1,
) -> ActingRight:
    """The grant under which `principal` may do `permission`; NotFound out of reach, Forbidden otherwise."""
    path = await reach.visible_path(session, principal, organization_id)
    if principal.vendor_admin:
        return ActingRight(organization_id=organization_id, grant=None)
    admin_at = [index for index, org in enumerate(path) if org in principal.admin_of]
    if not admin_at:
        raise Forbidden("only administrators of this organization or above act for it")
    grants = await live_grants(session, path[: max(admin_at) + 1], product_group_id)
    holder = next((org for org in path if org in grants), None)
    if holder is None:
        raise Forbidden("no grant on this product group covers this organization")
    grant = grants[holder]
    if permission not in grant.permissions:
        raise Forbidden(f"the grant that covers this organization does not include {permission.value!r}")
    if not await chain_is_live(session, grant):
        raise Forbidden("the grant that covers this organization was withdrawn")
    if permission == Permission.create:
        left = await quota.remaining_quota(session, grant.id)
        if left is not None and left < quantity:
            raise Forbidden(f"the grant's quota allows {max(left, 0)} more, not {quantity}")
    return ActingRight(organization_id=organization_id, grant=grant)
