"""The organization tree: vendor → resellers → customers → groups and subgroups.

Reads are scoped by reach (a foreign id is a 404); writes need an administrator of the node or above.
Moves take turns: each locks the tree's root and only then reads the paths it checks, so two crossing moves
(A below B, B below A) can never both pass the cycle check. A move also waits for orders and grants being
written in the subtree (and they for it), and those re-read their path afterwards: nothing is accepted on the
strength of a place in the tree that has just changed.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput, NotFound
from tessera.fields import FieldSpec, coerce_value
from tessera.models import (
    CatalogSetting,
    Grant,
    License,
    Membership,
    Order,
    Organization,
    OrganizationKind,
    Ticket,
    User,
)
from tessera.organizations.schema import OrganizationSpec
from tessera.pagination import PageOf, after_id, after_text, page_from
from tessera.principal import Principal
from tessera.rights import reach
from tessera.rights.locks import is_sqlite, lock_rows
from tessera.schema_base import validate_input

ALLOWED_PARENTS: dict[OrganizationKind, frozenset[OrganizationKind]] = {
    OrganizationKind.reseller: frozenset({OrganizationKind.vendor}),
    OrganizationKind.customer: frozenset({OrganizationKind.vendor, OrganizationKind.reseller}),
    OrganizationKind.group: frozenset(OrganizationKind),
}


async def customer_field_specs(session: AsyncSession) -> list[FieldSpec]:
    setting = await session.get(CatalogSetting, "customer_fields")
    return [FieldSpec.model_validate(item) for item in (setting.value if setting else [])]


async def check_custom_fields(session: AsyncSession, kind: OrganizationKind, values: dict[str, Any]) -> dict[str, Any]:
    """Values checked against `customer_fields`; required ones are required of customers only."""
    specs = {spec.name: spec for spec in await customer_field_specs(session)}
    issues = []
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none declared"
            issues.append(FieldIssue(f"custom_fields.{name}", f"unknown custom field (declared: {known})"))
            continue
        try:
            coerced = coerce_value(spec, value)
        except ValueError as error:
            issues.append(FieldIssue(f"custom_fields.{name}", str(error)))
            continue
        checked[name] = coerced.isoformat() if hasattr(coerced, "isoformat") else coerced
    if kind == OrganizationKind.customer:
        issues += [
            FieldIssue(f"custom_fields.{name}", "required field is missing")
            for name, spec in specs.items()
            if spec.required and name not in values and spec.default is None
        ]
    if issues:
        raise InvalidInput(issues[0].message, issues=issues)
    return checked


def spec_of(organization: Organization) -> OrganizationSpec:
    return OrganizationSpec.model_construct(
        kind=OrganizationKind(organization.kind),
        parent_id=organization.parent_id,
        name=organization.name,
        erp_customer_no=organization.erp_customer_no,
        country=organization.country,
        timezone=organization.timezone,
        locale=organization.locale,
        custom_fields=organization.custom_fields,
    )


async def list_organizations(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    parent_id: uuid.UUID | None = None,
    kind: OrganizationKind | None = None,
    erp_customer_no: str | None = None,
) -> PageOf[Organization]:
    query = select(Organization).where(reach.organization_filter(principal)).order_by(Organization.id)
    after = after_id(cursor, "organizations")
    if after is not None:
        query = query.where(Organization.id > after)
    if parent_id is not None:
        query = query.where(Organization.parent_id == parent_id)
    if kind is not None:
        query = query.where(Organization.kind == kind)
    if erp_customer_no is not None:
        query = query.where(Organization.erp_customer_no == erp_customer_no)
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda org: org.id, scope="organizations")


async def list_members(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, *, limit: int, cursor: str | None
) -> PageOf[tuple[User, str]]:
    """The members of an organization and their roles, by e-mail.

    Administrators of the organization or above see them (they manage them); its plain members see the
    organization but not who else belongs to it (403), as e-mail addresses are personal data.
    """
    await reach.administered_path(session, principal, organization_id, doing="list its members")
    query = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id)
        .order_by(User.email)
    )
    after = after_text(cursor, f"members:{organization_id}")
    if after is not None:
        query = query.where(User.email > after)
    rows = [(row[0], row[1]) for row in (await session.execute(query.limit(limit + 1))).all()]
    return page_from(rows, limit, key=lambda row: row[0].email, scope=f"members:{organization_id}")


async def _parent_for(
    session: AsyncSession, principal: Principal, kind: OrganizationKind, parent_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """The path of the new parent, which the caller must administer; kind rules are checked here too."""
    if kind == OrganizationKind.vendor:
        raise InvalidInput(
            "there is one vendor organization, created at first start",
            issues=[FieldIssue("kind", "choose reseller, customer or group")],
        )
    if parent_id is None:
        raise InvalidInput("a parent is required", issues=[FieldIssue("parent_id", "required for this kind")])
    path = await reach.path_ids(session, parent_id)
    if not reach.sees_path(principal, path):
        # Same answer for missing and out of reach: a body reference must not reveal what exists.
        raise InvalidInput("no such organization", issues=[FieldIssue("parent_id", "no such organization")])
    await reach.administered_path(session, principal, parent_id, doing="add organizations below it")
    parent = await session.get(Organization, parent_id)
    assert parent is not None
    if OrganizationKind(parent.kind) not in ALLOWED_PARENTS[kind]:
        allowed = ", ".join(sorted(ALLOWED_PARENTS[kind]))
        raise InvalidInput(
            f"a {kind.value} cannot sit below a {parent.kind}",
            issues=[FieldIssue("parent_id", f"the parent of a {kind.value} must be a {allowed}")],
        )
    return path


async def create_organization(session: AsyncSession, principal: Principal, spec: OrganizationSpec) -> Organization:
    await _parent_for(session, principal, spec.kind, spec.parent_id)
    custom = await check_custom_fields(session, spec.kind, spec.custom_fields)
    organization = Organization(**{**spec.model_dump(exclude={"custom_fields"}), "custom_fields": custom})
    session.add(organization)
    await session.flush()
    return organization


async def update_organization(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, changes: dict[str, Any]
) -> Organization:
    """Apply the keys sent; moving a node re-checks the tree and is refused once it holds rights or licenses."""
    path = await reach.administered_path(session, principal, organization_id, doing="change it")
    organization = await session.get(Organization, organization_id)
    if organization is None:  # deleted since the reach check
        raise NotFound(f"no organization {organization_id}")
    spec = validate_input(OrganizationSpec, {**spec_of(organization).model_dump(mode="json"), **changes})
    if spec.kind != organization.kind:
        raise InvalidInput("an organization's kind cannot change", issues=[FieldIssue("kind", "cannot change")])
    if spec.parent_id != organization.parent_id:
        await _move(session, principal, organization, spec.parent_id, path)
    columns = spec.model_dump(exclude={"kind", "custom_fields"})
    if "custom_fields" in changes:
        columns["custom_fields"] = await check_custom_fields(session, spec.kind, spec.custom_fields)
    for name, value in columns.items():
        if getattr(organization, name) != value:
            setattr(organization, name, value)
    try:
        await session.flush()
    except StaleDataError:
        # A deletion committed while this was checked: the row is gone, and so is the organization.
        raise NotFound(f"no organization {organization_id}") from None
    return organization


async def _move(
    session: AsyncSession,
    principal: Principal,
    organization: Organization,
    parent_id: uuid.UUID | None,
    path: list[uuid.UUID],
) -> None:
    if organization.parent_id is None or parent_id is None:
        raise InvalidInput("the vendor is the root of the tree", issues=[FieldIssue("parent_id", "cannot change")])
    await lock_rows(session, Organization.__table__, [path[-1]])  # type: ignore[arg-type]
    if not is_sqlite(session):
        # Rows that point at the subtree (orders, grants, licenses) lock its organizations for key share while
        # they are written: this waits for those in flight, so the check below sees them, and holds back new ones.
        subtree = select(Organization.id).where(Organization.id.in_(reach.subtree_ids([organization.id])))
        await session.execute(subtree.order_by(Organization.id).with_for_update())
    path = await reach.path_ids(session, organization.id)
    new_path = await reach.path_ids(session, parent_id)
    if organization.id in new_path:
        raise InvalidInput(
            "that parent lies inside this organization's subtree",
            issues=[FieldIssue("parent_id", "would make a cycle in the tree")],
        )
    await _parent_for(session, principal, OrganizationKind(organization.kind), parent_id)
    if not reach.administers_path(principal, path[1:]):
        raise InvalidInput(
            "only administrators above an organization may move it",
            issues=[FieldIssue("parent_id", "cannot change")],
        )
    if await _holds_anything(session, organization.id, with_grants=True):
        raise Conflict(
            "this organization or one below it holds licenses, orders or grants, which depend on its place",
            issues=[FieldIssue("parent_id", "cannot change while rights or licenses hang on the node")],
        )


async def _holds_anything(session: AsyncSession, organization_id: uuid.UUID, *, with_grants: bool) -> bool:
    subtree = reach.subtree_ids([organization_id])
    checks = [
        exists().where(License.organization_id.in_(subtree)),
        exists().where(Order.organization_id.in_(subtree)),
        exists().where(Ticket.organization_id.in_(subtree)),
    ]
    if with_grants:
        checks.append(exists().where(Grant.organization_id.in_(subtree), Grant.withdrawn_at.is_(None)))
    return bool(await session.scalar(select(or_(*checks))))


async def delete_organization(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> None:
    """Delete a leaf that holds no licenses; its memberships, grants and service keys go with it."""
    path = await reach.visible_path(session, principal, organization_id)
    if len(path) == 1:
        raise Conflict("the vendor organization cannot be deleted")
    if not reach.administers_path(principal, path[1:]):
        raise Forbidden("only administrators above an organization may delete it")
    children = await session.scalar(select(func.count()).where(Organization.parent_id == organization_id))
    if children:
        raise Conflict(f"the organization has {children} organizations below it; delete or move them first")
    if await _holds_anything(session, organization_id, with_grants=False):
        raise Conflict("the organization holds licenses or orders; they must stay traceable to it")
    result = await session.execute(delete(Organization).where(Organization.id == organization_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no organization {organization_id}")
    session.expire_all()
