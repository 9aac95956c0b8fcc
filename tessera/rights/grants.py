"""Granting, changing and withdrawing rights, with delegation bounds and an audit trail.

Who may write a grant: a vendor administrator; or, for a delegated grant, an administrator of the organization
holding the grant it is delegated from (or of an ancestor of it). A new grant by anyone else is delegated from
the nearest grant above the target, which must be delegable, and never exceeds it.

Races: a write first locks the target organization (so a new grant is created once, however many requests
race to create it) and then the root of the delegation tree it belongs to (`tessera.rights.quota`); every
check below reads under those locks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput, NotFound
from tessera.models import Grant, GrantAction, GrantEvent, Organization, Permission, ProductGroup, utcnow
from tessera.pagination import PageOf, after_text, page_from
from tessera.principal import Principal
from tessera.rights import acting, quota, reach
from tessera.rights.locks import lock_rows


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
        select(Grant)
        .where(Grant.organization_id == organization_id, Grant.product_group_id == group_id)
        .execution_options(populate_existing=True)
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
    left = await quota.remaining_quota(session, delegator.id, excluding=excluding)
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
    await lock_rows(session, Organization.__table__, [organization_id])  # type: ignore[arg-type]
    path = await reach.visible_path(session, principal, organization_id)  # again: a move may just have committed
    locked_root: uuid.UUID | None = None
    for _attempt in range(3):
        grant = await _grant_row(session, organization_id, group.id)
        live = grant is not None and grant.withdrawn_at is None
        if grant is not None and live:
            if not await _may_manage(session, principal, grant):
                raise Forbidden("only whoever holds the grant this one was delegated from may change it")
            anchor: Grant | None = grant
        else:
            anchor = await _delegator_for_new(session, principal, path, group.id)
        if anchor is None:
            break  # a vendor administrator's new root grant: the organization's lock is enough
        links = await quota.lock_tree(session, anchor.id)
        if links and links[-1].id == locked_root:
            break
        # Locked now, but what was read before the lock may be stale: read again, until it names this tree.
        locked_root = links[-1].id if links else None
    grant = await _grant_row(session, organization_id, group.id)
    live = grant is not None and grant.withdrawn_at is None
    if grant is not None and live:
        delegator = (
            await session.get(Grant, grant.parent_grant_id, populate_existing=True) if grant.parent_grant_id else None
        )
    else:
        delegator = await _delegator_for_new(session, principal, path, group.id)
    if delegator is not None:
        await _check_bounds(session, delegator, values, grant.id if grant is not None else None)
    if grant is not None and live:
        await _check_shrink(session, grant, values)
    elif grant is not None and values.quota is not None:
        # Granted again after a withdrawal: what was created under it before still counts.
        left = await quota.remaining_quota(session, grant.id, proposed=values.quota)
        if left is not None and left < 0:
            raise Conflict(
                f"{grant.quota_used} licenses were created under this grant already",
                issues=[FieldIssue("quota", f"must be at least {values.quota - left}")],
            )
    permissions = sorted(p.value for p in values.permissions)
    if grant is None:
        grant = Grant(organization_id=organization_id, product_group_id=group.id, quota_used=0)
        session.add(grant)
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


async def _live_children(session: AsyncSession, grant: Grant) -> list[Grant]:
    rows = await session.scalars(
        select(Grant)
        .where(Grant.parent_grant_id == grant.id, Grant.withdrawn_at.is_(None))
        .order_by(Grant.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def _check_shrink(session: AsyncSession, grant: Grant, values: GrantValues) -> None:
    """Lowering a quota below what was used and delegated would take licenses back: refused."""
    if values.quota is None:
        return
    children = await _live_children(session, grant)
    if values.delegable and any(child.quota is None for child in children):
        raise Conflict(
            "a grant delegated from this one has no quota",
            issues=[FieldIssue("quota", "limit or withdraw the delegated grants first")],
        )
    # Not delegable any more: what it delegated is withdrawn below, so it no longer counts.
    left = await quota.remaining_quota(session, grant.id, proposed=values.quota, delegating=values.delegable)
    if left is not None and left < 0:
        raise Conflict(
            "the quota would fall below what is used and delegated",
            issues=[FieldIssue("quota", f"must be at least {values.quota - left}")],
        )


async def _trim_delegated(session: AsyncSession, principal: Principal, grant: Grant) -> None:
    """Delegated grants never exceed their source: narrow them, or withdraw them when nothing is left."""
    for child in await _live_children(session, grant):
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
        pending += await _live_children(session, current)
    await session.flush()


_CASCADE = "withdrawn with the grant it was delegated from"


async def withdraw_grant(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, group_code: str
) -> None:
    """Withdraw a grant and, with it, everything delegated from it."""
    grant, _group = await get_grant(session, principal, organization_id, group_code)
    await quota.lock_tree(session, grant.id)
    # Read again under the lock: a concurrent withdrawal may have taken it already.
    grant, _group = await get_grant(session, principal, organization_id, group_code)
    if not await _may_manage(session, principal, grant):
        raise Forbidden("only whoever holds the grant this one was delegated from may withdraw it")
    await _withdraw(session, principal, grant, reason=None)


@dataclass(frozen=True)
class GrantListing:
    grant: Grant
    product_group: str
    remaining: int | None


async def list_grants(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, *, limit: int, cursor: str | None
) -> PageOf[GrantListing]:
    """The live grants of a visible organization, by product group code, each with its remaining quota."""
    await reach.visible_path(session, principal, organization_id)
    query = (
        select(Grant, ProductGroup.code, quota.remaining_of())
        .join(ProductGroup, ProductGroup.id == Grant.product_group_id)
        .where(Grant.organization_id == organization_id, Grant.withdrawn_at.is_(None))
        .order_by(ProductGroup.code)
    )
    after = after_text(cursor, f"grants:{organization_id}")
    if after is not None:
        query = query.where(ProductGroup.code > after)
    rows = (await session.execute(query.limit(limit + 1))).all()
    listed = [GrantListing(row[0], row[1], None if row[2] is None else int(row[2])) for row in rows]
    return page_from(listed, limit, key=lambda item: item.product_group, scope=f"grants:{organization_id}")
