"""Granting, changing and withdrawing rights, with delegation bounds and an audit trail.

Who may write a grant: a vendor administrator; or, for a delegated grant, an administrator of the organization
holding the grant it is delegated from (or of an ancestor of it). A new grant by anyone else is delegated from
the nearest grant above the target, which must be delegable, and never exceeds it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput, NotFound
from tessera.models import Grant, GrantAction, GrantEvent, Permission, ProductGroup, utcnow
from tessera.principal import Principal
from tessera.rights import acting, reach


@dataclass(frozen=True)
class GrantValues:
    permissions: frozenset[Permission]
    quota: int | None
    delegable: bool


async def product_group(session: AsyncSession, code: str) -> ProductGroup:
    group = await session.scalar(select(ProductGroup).where(ProductGroup.code == code))
    if group is None:
        known = ", ".join(sorted((await session.scalars(select(ProductGroup.code))).all())) or "none defined"
        raise InvalidInput(f"unknown product group {code!r}", issues=[FieldIssue("product_group", f"known: {known}")])
    return group


async def _grant_row(session: AsyncSession, organization_id: uuid.UUID, group_id: uuid.UUID) -> Grant | None:
    return await session.scalar(
        select(Grant).where(Grant.organization_id == organization_id, Grant.product_group_id == group_id)
    )


async def get_grant(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, group_code: str
) -> tuple[Grant, ProductGroup]:
    """A live grant of a visible organization; anyone who sees the organization may read what it may do."""
    await reach.visible_path(session, principal, organization_id)
    group = await product_group(session, group_code)
    grant = await _grant_row(session, organization_id, group.id)
    if grant is None or grant.withdrawn_at is not None:
        raise NotFound(f"the organization holds no grant on {group_code!r}")
    return grant, group


def _audit(session: AsyncSession, principal: Principal, grant: Grant, action: GrantAction, reason: str | None) -> None:
    session.add(
        GrantEvent(
            grant_id=grant.id,
            organization_id=grant.organization_id,
            product_group_id=grant.product_group_id,
            action=action,
            permissions=list(grant.permissions),
            quota=grant.quota,
            delegable=grant.delegable,
            parent_grant_id=grant.parent_grant_id,
            actor_user_id=principal.user_id,
            actor_api_key_id=principal.api_key_id,
            reason=reason,
        )
    )


async def _may_manage(session: AsyncSession, principal: Principal, grant: Grant) -> bool:
    """Whether the caller controls the grant `grant` was delegated from (vendor admins control every grant)."""
    if principal.vendor_admin:
        return True
    if grant.parent_grant_id is None:
        return False
    parent = await session.get(Grant, grant.parent_grant_id)
    return parent is not None and reach.administers_path(
        principal, await reach.path_ids(session, parent.organization_id)
    )


async def _delegator_for_new(
    session: AsyncSession, principal: Principal, path: list[uuid.UUID], group_id: uuid.UUID
) -> Grant | None:
    """The grant a new grant is delegated from; None means a vendor administrator's root grant."""
    if principal.vendor_admin:
        return None
    above = path[1:]
    admin_at = [index for index, org in enumerate(above) if org in principal.admin_of]
    if not admin_at:
        raise Forbidden("only administrators of an organization above this one may grant to it")
    grants = await acting.live_grants(session, above[: max(admin_at) + 1], group_id)
    holder = next((org for org in above if org in grants), None)
    if holder is None:
        raise Forbidden("you hold no grant on this product group to delegate from")
    delegator = grants[holder]
    if not delegator.delegable or not await acting.chain_is_live(session, delegator):
        raise Forbidden("the grant above this organization may not be delegated")
    return delegator


async def _check_bounds(
    session: AsyncSession, delegator: Grant, values: GrantValues, excluding: uuid.UUID | None
) -> None:
    beyond = sorted(p.value for p in values.permissions if p.value not in delegator.permissions)
    issues = []
    if beyond:
        issues.append(FieldIssue("permissions", f"the delegating grant does not include {', '.join(beyond)}"))
    left = await acting.remaining_quota(session, delegator, excluding=excluding)
    if left is not None and values.quota is None:
        issues.append(FieldIssue("quota", f"the delegating grant has a quota: give one of at most {max(left, 0)}"))
    elif left is not None and values.quota is not None and values.quota > left:
        issues.append(FieldIssue("quota", f"exceeds the {max(left, 0)} remaining on the delegating grant"))
    if issues:
        raise Forbidden("a delegated grant cannot exceed the grant it comes from", issues=issues)


async def put_grant(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, group_code: str, values: GrantValues
) -> tuple[Grant, bool]:
    """Grant or change rights of an organization on a product group; True when newly granted."""
    path = await reach.visible_path(session, principal, organization_id)
    group = await product_group(session, group_code)
    grant = await _grant_row(session, organization_id, group.id)
    live = grant is not None and grant.withdrawn_at is None
    if grant is not None and live:
        if not await _may_manage(session, principal, grant):
            raise Forbidden("only whoever holds the grant this one was delegated from may change it")
        delegator = await session.get(Grant, grant.parent_grant_id) if grant.parent_grant_id else None
    else:
        delegator = await _delegator_for_new(session, principal, path, group.id)
    if delegator is not None:
        await _check_bounds(session, delegator, values, grant.id if grant is not None else None)
    if grant is not None and live:
        await _check_shrink(session, grant, values)
    permissions = sorted(p.value for p in values.permissions)
    if grant is None:
        grant = Grant(organization_id=organization_id, product_group_id=group.id, quota_used=0)
        session.add(grant)
    if grant.quota_used and values.quota is not None and values.quota < grant.quota_used:
        raise Conflict(
            f"{grant.quota_used} licenses were created under this grant already",
            issues=[FieldIssue("quota", f"must be at least {grant.quota_used}")],
        )
    grant.permissions = permissions
    grant.quota = values.quota
    grant.delegable = values.delegable
    grant.parent_grant_id = delegator.id if delegator is not None else None
    grant.granted_by_user_id = principal.user_id
    grant.withdrawn_at = None
    await session.flush()
    _audit(session, principal, grant, GrantAction.changed if live else GrantAction.granted, None)
    await _trim_delegated(session, principal, grant)
    await session.flush()
    return grant, not live


async def _check_shrink(session: AsyncSession, grant: Grant, values: GrantValues) -> None:
    """Lowering a quota below what was used and delegated would take licenses back: refused."""
    if values.quota is None:
        return
    children = (
        await session.scalars(select(Grant).where(Grant.parent_grant_id == grant.id, Grant.withdrawn_at.is_(None)))
    ).all()
    if values.delegable and any(child.quota is None for child in children):
        raise Conflict(
            "a grant delegated from this one has no quota",
            issues=[FieldIssue("quota", "limit or withdraw the delegated grants first")],
        )
    needed = grant.quota_used + sum(child.quota or 0 for child in children if values.delegable)
    if values.quota < needed:
        raise Conflict(
            "the quota would fall below what is used and delegated",
            issues=[FieldIssue("quota", f"must be at least {needed}")],
        )


async def _trim_delegated(session: AsyncSession, principal: Principal, grant: Grant) -> None:
    """Delegated grants never exceed their source: narrow them, or withdraw them when nothing is left."""
    children = (
        await session.scalars(select(Grant).where(Grant.parent_grant_id == grant.id, Grant.withdrawn_at.is_(None)))
    ).all()
    for child in children:
        kept = sorted(set(child.permissions) & set(grant.permissions))
        if not grant.delegable or not kept:
            await _withdraw(session, principal, child, reason="the grant it was delegated from was narrowed")
        elif kept != sorted(child.permissions):
            child.permissions = kept
            _audit(session, principal, child, GrantAction.changed, "the grant it was delegated from was narrowed")
            await _trim_delegated(session, principal, child)


async def _withdraw(session: AsyncSession, principal: Principal, grant: Grant, *, reason: str | None) -> None:
    now = utcnow()
    pending = [grant]
    while pending:
        current = pending.pop()
        current.withdrawn_at = now
        _audit(session, principal, current, GrantAction.withdrawn, reason if current is grant else _CASCADE)
        pending += (
            await session.scalars(
                select(Grant).where(Grant.parent_grant_id == current.id, Grant.withdrawn_at.is_(None))
            )
        ).all()
    await session.flush()


_CASCADE = "withdrawn with the grant it was delegated from"


async def withdraw_grant(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, group_code: str
) -> None:
    """Withdraw a grant and, with it, everything delegated from it."""
    grant, _group = await get_grant(session, principal, organization_id, group_code)
    if not await _may_manage(session, principal, grant):
        raise Forbidden("only whoever holds the grant this one was delegated from may withdraw it")
    await _withdraw(session, principal, grant, reason=None)
