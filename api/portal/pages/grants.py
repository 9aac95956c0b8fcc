"""Grants and quotas of an organization; delegating, changing and withdrawing them through tessera.rights.grants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage
from api.portal.pages.organizations import principal_of, read_fields
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from api.schemas.organizations import GrantUpdate
from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput, TesseraError
from tessera.models import Grant, Organization, Permission, ProductGroup
from tessera.principal import Principal
from tessera.rights import grants, quota, reach
from tessera.schema_base import validate_input

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

GRANTS_LIMIT = 500
"""Grants shown; one per product group, so the catalogue's size bounds it."""


@dataclass(frozen=True)
class GrantRow:
    grant: Grant
    group: ProductGroup
    remaining: int | None
    delegated: int
    source: str | None
    """The name of the organization the grant was delegated from, when the viewer sees it."""


async def _context(
    page: Page,
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    principal = principal_of(page)
    organization = await reach.visible_organization(session, principal, organization_id)
    path = await reach.path_ids(session, organization_id)
    listing = await grants.list_grants(session, principal, organization_id, limit=GRANTS_LIMIT, cursor=None)
    groups = list((await session.scalars(select(ProductGroup).order_by(ProductGroup.code))).all())
    by_id = {item.id: item for item in groups}
    sources = await _sources(session, principal, [item.grant.parent_grant_id for item in listing.items])
    delegated = await _delegated(session, [item.grant.id for item in listing.items])
    rows = []
    for item in listing.items:
        grant = item.grant
        source = sources.get(grant.parent_grant_id) if grant.parent_grant_id else None
        rows.append(GrantRow(grant, by_id[grant.product_group_id], item.remaining, delegated.get(grant.id, 0), source))
    # Who may delegate to this node: vendor admins, and admins above it (the service judges the bounds).
    # The vendor's own node needs none: its administrators hold everything.
    may_delegate = len(path) > 1 and (principal.vendor_admin or reach.administers_path(principal, path[1:]))
    held = {row.group.code: row for row in rows}
    chosen = values or _values_of(held.get(group or ""))
    return {
        "organization": organization,
        "rows": rows,
        "groups": groups,
        "may_delegate": may_delegate,
        "is_vendor": len(path) == 1,
        "permissions": [permission.value for permission in Permission],
        "errors": errors or {},
        "values": chosen,
    }


def _values_of(row: GrantRow | None) -> dict[str, Any]:
    if row is None:
        return {"product_group": "", "permissions": [], "quota": "", "delegable": False}
    grant = row.grant
    quota = "" if grant.quota is None else str(grant.quota)
    return {
        "product_group": row.group.code,
        "permissions": grant.permissions,
        "quota": quota,
        "delegable": grant.delegable,
    }


async def _delegated(session: AsyncSession, grant_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Quota handed down from each grant, by the formula the quota checks use (also under unlimited grants)."""
    if not grant_ids:
        return {}
    rows = await session.execute(
        select(Grant.id, quota.delegated_of(Grant.id.expression)).where(Grant.id.in_(grant_ids))
    )
    return {row[0]: int(row[1]) for row in rows.all()}


async def _sources(
    session: AsyncSession, principal: Principal, parent_ids: list[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    """The names of the organizations the grants were delegated from, for those within the viewer's reach."""
    wanted = [grant_id for grant_id in parent_ids if grant_id is not None]
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(Grant.id, Organization.name)
            .join(Organization, Organization.id == Grant.organization_id)
            .where(Grant.id.in_(wanted), reach.organization_filter(principal))
        )
    ).all()
    return {row[0]: row[1] for row in rows}


def _page(page: Page, context: dict[str, Any], *, status: int = 200, flash: str = "") -> Response:
    return render(page, "portal/grants/list.html", status=status, nav="organizations", flash=flash, **context)


@router.get("/organizations/{organization_id}/grants")
async def list_grants(
    organization_id: uuid.UUID, page: SignedInPage, session: Session, group: str | None = None, done: str | None = None
) -> Response:
    """The grants and quotas an organization holds, and the form to grant or change one."""
    context = await _context(page, session, organization_id, group=group)
    flash = ""
    if done == "saved":
        flash = translate(page, "The grant is saved.")
    elif done == "withdrawn":
        flash = translate(page, "The grant is withdrawn, with everything delegated from it.")
    return _page(page, context, flash=flash)


@router.post("/organizations/{organization_id}/grants")
async def save_grant(organization_id: uuid.UUID, page: SignedInPage, form: Form, session: Session) -> Response:
    """Grant or change rights of this organization on a product group, within what the delegator holds."""
    chosen = [value for value in form.getlist("permissions") if isinstance(value, str)][: len(Permission)]
    read, too_long = read_fields(form, product_group=64, quota=32, delegable=8)
    values: dict[str, Any] = {
        "product_group": read["product_group"],
        "permissions": chosen,
        "quota": read["quota"].strip(),
        "delegable": read["delegable"] == "on",
    }
    principal = principal_of(page)
    await reach.visible_path(session, principal, organization_id)
    try:
        if too_long:
            raise InvalidInput(too_long[0].message, issues=too_long)
        body = validate_input(
            GrantUpdate,
            {"permissions": chosen, "quota": values["quota"] or None, "delegable": values["delegable"]},
        )
        if not values["product_group"]:
            raise InvalidInput("choose a product group", issues=[FieldIssue("product_group", "choose a product group")])
        update = grants.GrantValues(permissions=frozenset(body.permissions), quota=body.quota, delegable=body.delegable)
        await grants.put_grant(session, principal, organization_id, values["product_group"], update)
    except (InvalidInput, Forbidden, Conflict) as error:
        return await _refused(page, session, organization_id, error, values)
    return redirect(f"/organizations/{organization_id}/grants?done=saved")


async def _refused(
    page: Page, session: AsyncSession, organization_id: uuid.UUID, error: TesseraError, values: dict[str, Any]
) -> Response:
    await session.rollback()
    # `permissions.0` (one checkbox's value) is shown next to the permissions as a whole.
    issues = [FieldIssue(issue.field.split(".")[0], issue.message) for issue in error.issues]
    errors = field_errors(issues) or {"form": error.detail}
    context = await _context(page, session, organization_id, errors=errors, values=values)
    return _page(page, context, status=error.status)


@router.post("/organizations/{organization_id}/grants/{product_group}/withdraw")
async def withdraw_grant(
    organization_id: uuid.UUID, product_group: str, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Withdraw a grant and everything delegated from it."""
    del form  # checked for its CSRF token only
    await grants.withdraw_grant(session, principal_of(page), organization_id, product_group[:64])
    return redirect(f"/organizations/{organization_id}/grants?done=withdrawn")
