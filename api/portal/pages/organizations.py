"""Groups: the organization tree the viewer sees, and each organization's page (members, tickets, sub-organizations).

Every read is scoped by the rights service's filters and every write goes through the same service as the API,
so what a page shows and allows is exactly what the API would.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from tessera.auth.emails import normalize_email
from tessera.auth.invitations import InvitationPolicy
from tessera.errors import FieldIssue, InvalidInput, TesseraError
from tessera.models import License, Membership, Organization, OrganizationKind, Product, Role, Ticket, User, utcnow
from tessera.organizations import service, users
from tessera.organizations.schema import OrganizationSpec
from tessera.principal import Principal
from tessera.rights import reach
from tessera.rights.locks import lock_rows
from tessera.schema_base import validate_input

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

TREE_LIMIT = 2000
"""Nodes shown on the tree page; a deployment beyond that needs a search, not a longer page."""
ROWS_LIMIT = 500
"""Members and tickets shown on a group page."""
SECOND_CLICK = timedelta(seconds=30)
"""How long an identical "Create organization" counts as the same click again rather than a new organization."""


@dataclass
class Node:
    organization: Organization
    children: list[Node] = field(default_factory=list)
    tickets: int = 0
    members: int | None = None


def principal_of(page: Page) -> Principal:
    assert page.viewer is not None  # SignedInPage guarantees it
    return page.viewer.principal


@router.get("/organizations")
async def list_organizations(page: SignedInPage, session: Session) -> Response:
    """The organization tree I can see, each node linking to its group page."""
    principal = principal_of(page)
    rows = list(
        (
            await session.scalars(
                select(Organization)
                .where(reach.organization_filter(principal))
                .order_by(Organization.name, Organization.id)
                .limit(TREE_LIMIT + 1)
            )
        ).all()
    )
    truncated = len(rows) > TREE_LIMIT
    nodes = {org.id: Node(org) for org in rows[:TREE_LIMIT]}
    ids = list(nodes)
    tickets = await session.execute(
        select(Ticket.organization_id, func.count())
        .where(reach.ticket_filter(principal), Ticket.organization_id.in_(ids))
        .group_by(Ticket.organization_id)
    )
    for org_id, count in tickets.all():
        nodes[org_id].tickets = count
    # Member counts only where the viewer manages the members (plain members may not list them).
    managed = select(Organization.id).where(Organization.id.in_(reach.subtree_ids(principal.admin_of)))
    if principal.vendor_admin:
        managed = select(Organization.id)
    members = await session.execute(
        select(Membership.organization_id, func.count())
        .where(Membership.organization_id.in_(ids), Membership.organization_id.in_(managed))
        .group_by(Membership.organization_id)
    )
    counted: dict[uuid.UUID, int] = {row[0]: row[1] for row in members.all()}
    for org_id in await session.scalars(managed.where(Organization.id.in_(ids))):
        nodes[org_id].members = counted.get(org_id, 0)
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.organization.parent_id) if node.organization.parent_id else None
        (parent.children if parent else roots).append(node)
    return render(page, "portal/organizations/list.html", nav="organizations", roots=roots, truncated=truncated)


@dataclass
class TicketRow:
    ticket: Ticket
    product: Product
    holder: User | None
    error: dict[str, str] = field(default_factory=dict)
    code: str | None = None


async def group_context(
    page: Page, session: AsyncSession, organization_id: uuid.UUID, *, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything the group page shows, as this viewer may see it; a foreign id is the service's NotFound."""
    principal = principal_of(page)
    organization = await reach.visible_organization(session, principal, organization_id)
    path = await reach.path_ids(session, organization_id)
    administers = reach.administers_path(principal, path)
    parent = None
    if organization.parent_id is not None and reach.sees_path(principal, path[1:]):
        parent = await session.get(Organization, organization.parent_id)
    members: list[tuple[User, str]] = []
    more_members = False
    if administers:
        listed = await service.list_members(session, principal, organization_id, limit=ROWS_LIMIT, cursor=None)
        members, more_members = listed.items, listed.next_cursor is not None
    found = (
        await session.execute(
            select(Ticket, Product)
            .join(License, License.id == Ticket.license_id)
            .join(Product, Product.id == License.product_id)
            .where(Ticket.organization_id == organization_id, reach.ticket_filter(principal))
            .order_by(Ticket.created_at, Ticket.id)
            .limit(ROWS_LIMIT + 1)
        )
    ).all()
    holder_ids = {row[0].allocated_user_id for row in found if row[0].allocated_user_id is not None}
    holders = {
        user.id: user
        for user in await session.scalars(select(User).where(User.id.in_(holder_ids), reach.user_filter(principal)))
    }
    tickets = [
        TicketRow(row[0], row[1], holders.get(row[0].allocated_user_id) if row[0].allocated_user_id else None)
        for row in found[:ROWS_LIMIT]
    ]
    children = (
        await session.scalars(
            select(Organization)
            .where(Organization.parent_id == organization_id, reach.organization_filter(principal))
            .order_by(Organization.name, Organization.id)
        )
    ).all()
    kinds = [
        kind.value
        for kind in OrganizationKind
        if kind != OrganizationKind.vendor and OrganizationKind(organization.kind) in service.ALLOWED_PARENTS[kind]
    ]
    return {
        "organization": organization,
        "parent": parent,
        "administers": administers,
        "members": members,
        "member_labels": member_labels(user for user, _role in members),
        "more_members": more_members,
        "tickets": tickets,
        "more_tickets": len(found) > ROWS_LIMIT,
        "children": children,
        "kinds": kinds,
        "roles": [role.value for role in Role],
        "errors": errors or {},
        "values": {},
    }


def member_labels(people: Iterable[User]) -> dict[uuid.UUID, str]:
    """How each member is named in the "Allocate to" choice: by name, by e-mail when nameless or named alike."""
    listed = list(people)
    names = Counter(user.name for user in listed if user.name)
    labels: dict[uuid.UUID, str] = {}
    for user in listed:
        if not user.name:
            labels[user.id] = user.email
        elif names[user.name] == 1:
            labels[user.id] = user.name
        else:
            labels[user.id] = f"{user.name} ({user.email})"
    return labels


def render_group(page: Page, context: dict[str, Any], *, status: int = 200, flash: str = "") -> Response:
    return render(page, "portal/organizations/group.html", status=status, nav="organizations", flash=flash, **context)


def _flash(page: Page, done: str | None) -> str:
    """The note after a successful form (the redirect names it, so a reload shows it again, harmlessly)."""
    if done == "invited":
        return translate(page, "The invitation is sent.")
    if done == "created":
        return translate(page, "The organization is created.")
    if done == "role":
        return translate(page, "The role is changed.")
    if done == "removed":
        return translate(page, "The member is removed; the tickets they held by name went back to the organization.")
    if done == "ticket":
        return translate(page, "The ticket is saved.")
    return ""


@router.get("/organizations/{organization_id}")
async def get_organization(
    organization_id: uuid.UUID, page: SignedInPage, session: Session, done: str | None = None
) -> Response:
    """One organization's group page: facts, members, tickets and sub-organizations."""
    context = await group_context(page, session, organization_id)
    return render_group(page, context, flash=_flash(page, done))


def read_fields(form: FormData, **limits: int) -> tuple[dict[str, str], list[FieldIssue]]:
    """The text fields named, each at most its limit: an oversized one is a problem next to it, read as empty."""
    values: dict[str, str] = {}
    issues: list[FieldIssue] = []
    for name, limit in limits.items():
        try:
            values[name] = text(form, name, max_length=limit)
        except InvalidInput as error:
            values[name] = ""
            issues += error.issues
    return values, issues


async def _refused(
    page: Page, session: AsyncSession, organization_id: uuid.UUID, error: TesseraError, values: dict[str, str]
) -> Response:
    """The group page again, with the service's problems next to the fields that caused them."""
    await session.rollback()
    errors = field_errors(error.issues) or {"form": error.detail}
    context = await group_context(page, session, organization_id, errors=errors)
    context["values"] = values
    return render_group(page, context, status=error.status)


@router.post("/organizations/{organization_id}/invite")
async def invite_member(organization_id: uuid.UUID, page: SignedInPage, form: Form, session: Session) -> Response:
    """Invite an e-mail address into this organization with a role; the person joins on accepting."""
    values, too_long = read_fields(form, email=400, role=16)
    try:
        if too_long:
            raise InvalidInput(too_long[0].message, issues=too_long)
        try:
            email = normalize_email(values["email"].strip())
        except ValueError as problem:
            raise InvalidInput(str(problem), issues=[FieldIssue("email", str(problem))]) from None
        if values["role"] not in {role.value for role in Role}:
            raise InvalidInput("choose admin or member", issues=[FieldIssue("role", "choose admin or member")])
        await users.invite(
            session,
            principal_of(page),
            InvitationPolicy.from_settings(page.state.settings),
            email=email,
            organization_id=organization_id,
            role=Role(values["role"]),
        )
    except InvalidInput as error:
        return await _refused(page, session, organization_id, error, values)
    return redirect(f"/organizations/{organization_id}?done=invited")


@router.post("/organizations/{organization_id}/sub-organizations")
async def create_sub_organization(
    organization_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Create an organization below this one."""
    values, too_long = read_fields(form, name=400, kind=16, country=10)
    values["name"], values["country"] = values["name"].strip(), values["country"].strip().upper()
    principal = principal_of(page)
    parent = await reach.visible_organization(session, principal, organization_id)
    try:
        if too_long:
            raise InvalidInput(too_long[0].message, issues=too_long)
        spec = validate_input(
            OrganizationSpec,
            {
                "kind": values["kind"],
                "parent_id": str(organization_id),
                "name": values["name"],
                "country": values["country"] or None,
                # A group of a German customer works in German time and language unless changed later.
                "timezone": parent.timezone,
                "locale": parent.locale,
            },
        )
        # Only someone who may create here learns of a twin; anyone else gets the service's refusal.
        await reach.administered_path(session, principal, organization_id, doing="add organizations below it")
        twin = await _just_created(session, spec)
        created = twin or await service.create_organization(session, principal, spec)
    except InvalidInput as error:
        return await _refused(page, session, organization_id, _on_form_fields(error), values)
    return redirect(f"/organizations/{created.id}?done=created")


async def _just_created(session: AsyncSession, spec: OrganizationSpec) -> Organization | None:
    """The same organization created below the same parent moments ago: a second click, answered with the first.

    The parent's lock makes two clicks take turns, so the second one sees what the first created.
    """
    assert spec.parent_id is not None
    await lock_rows(session, Organization.__table__, [spec.parent_id])  # type: ignore[arg-type]
    twin: Organization | None = await session.scalar(
        select(Organization)
        .where(
            Organization.parent_id == spec.parent_id,
            Organization.name == spec.name,
            Organization.kind == spec.kind,
            Organization.created_at >= utcnow() - SECOND_CLICK,
        )
        .limit(1)
    )
    return twin


def _on_form_fields(error: InvalidInput) -> InvalidInput:
    # The parent is this page's organization: a problem with it belongs next to the kind chosen for it.
    issues = [
        FieldIssue("kind" if issue.field == "parent_id" else issue.field, issue.message) for issue in error.issues
    ]
    return InvalidInput(error.detail, issues=issues)


@router.post("/organizations/{organization_id}/members/{user_id}/role")
async def change_role(
    organization_id: uuid.UUID, user_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Make a member an admin, or an admin a member."""
    role = text(form, "role")
    if role not in {item.value for item in Role}:
        raise InvalidInput("choose admin or member", issues=[FieldIssue("role", "choose admin or member")])
    await users.change_role(session, principal_of(page), organization_id, user_id, Role(role))
    return redirect(f"/organizations/{organization_id}?done=role")


@router.post("/organizations/{organization_id}/members/{user_id}/remove")
async def remove_member(
    organization_id: uuid.UUID, user_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Remove a member; the tickets they held by name go back to the organization."""
    del form  # checked for its CSRF token only
    principal = principal_of(page)
    await users.remove_member(session, principal, organization_id, user_id)
    if user_id == principal.user_id:
        return redirect("/organizations")  # who leaves may no longer see the organization
    return redirect(f"/organizations/{organization_id}?done=removed")
