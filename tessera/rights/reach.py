"""Reach: which organizations, users and tickets a caller may see (the visibility rule).

Admins reach the whole subtree of each organization they administer; members reach only the organizations
they belong to. Everything else is outside reach and answered as missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, Select, and_, false, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Forbidden, NotFound
from tessera.models import Membership, Organization, Ticket, TicketStatus, User, Visibility
from tessera.principal import Principal


def subtree_ids(roots: Collection[uuid.UUID]) -> Select[tuple[uuid.UUID]]:
    """Ids of `roots` and of every organization below them (a recursive CTE: one query on both databases)."""
    tree = select(Organization.id).where(Organization.id.in_(list(roots))).cte(recursive=True)
    tree = tree.union_all(select(Organization.id).where(Organization.parent_id == tree.c.id))
    return select(tree.c.id)


async def path_ids(session: AsyncSession, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """`[organization, parent, ..., vendor]`; empty when the organization does not exist."""
    up = (
        select(Organization.id, Organization.parent_id, literal(0).label("depth"))
        .where(Organization.id == organization_id)
        .cte("path", recursive=True)
    )
    up = up.union_all(
        # The depth bound only guards the query: moves keep the tree free of cycles.
        select(Organization.id, Organization.parent_id, (up.c.depth + 1).label("depth")).where(
            Organization.id == up.c.parent_id, up.c.depth < 64
        )
    )
    return list((await session.scalars(select(up.c.id).order_by(up.c.depth))).all())


def sees_path(principal: Principal, path: list[uuid.UUID]) -> bool:
    """Whether an organization with this path (itself first) is within reach."""
    if not path:
        return False
    return path[0] in principal.member_of or not principal.admin_of.isdisjoint(path)


def administers_path(principal: Principal, path: list[uuid.UUID]) -> bool:
    return bool(path) and not principal.admin_of.isdisjoint(path)


async def visible_path(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """The path of a visible organization, or NotFound (missing and out of reach are the same answer)."""
    path = await path_ids(session, organization_id)
    if not sees_path(principal, path):
        raise NotFound(f"no organization {organization_id}")
    return path


async def visible_organization(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> Organization:
    await visible_path(session, principal, organization_id)
    organization = await session.get(Organization, organization_id)
    if organization is None:  # pragma: no cover - the path query just found it
        raise NotFound(f"no organization {organization_id}")
    return organization


async def administered_path(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, *, doing: str
) -> list[uuid.UUID]:
    """The path of an organization the caller administers (it or an ancestor): NotFound, else Forbidden."""
    path = await visible_path(session, principal, organization_id)
    if not administers_path(principal, path):
        raise Forbidden(f"only administrators of this organization or above may {doing}")
    return path


def organization_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `Organization` for the organizations within reach."""
    if principal.vendor_admin:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if principal.admin_of:
        clauses.append(Organization.id.in_(subtree_ids(principal.admin_of)))
    if principal.member_of:
        clauses.append(Organization.id.in_(list(principal.member_of)))
    return or_(*clauses) if clauses else false()


def user_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `User`: the caller itself and the members of organizations it administers."""
    if principal.vendor_admin:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if principal.user_id is not None:
        clauses.append(User.id == principal.user_id)
    if principal.admin_of:
        members = select(Membership.user_id).where(Membership.organization_id.in_(subtree_ids(principal.admin_of)))
        clauses.append(User.id.in_(members))
    return or_(*clauses) if clauses else false()


def _activatable(principal: Principal) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if principal.user_id is not None:
        clauses.append(Ticket.allocated_user_id == principal.user_id)
    if principal.member_of:
        clauses.append(
            and_(
                Ticket.organization_id.in_(list(principal.member_of)),
                Ticket.allocated_user_id.is_(None),
                Ticket.visibility == Visibility.all_members,
            )
        )
    return clauses


def ticket_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `Ticket`: the visibility rule (see the README, Rights)."""
    if principal.vendor_admin:
        return true()
    clauses = _activatable(principal)
    if principal.admin_of:
        clauses.append(Ticket.organization_id.in_(subtree_ids(principal.admin_of)))
    return or_(*clauses) if clauses else false()


def mine_filter(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause on `Ticket`: what the caller could activate itself (the activation page)."""
    clauses = _activatable(principal)
    if not clauses:
        return false()
    return and_(or_(*clauses), Ticket.status != TicketStatus.revoked)
