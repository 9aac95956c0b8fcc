"""Users and their memberships. An administrator of a node manages the members of its whole subtree."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, FieldIssue, InvalidInput, NotFound
from tessera.licenses import tickets
from tessera.models import Membership, Role, User
from tessera.organizations.schema import UserSpec
from tessera.pagination import PageOf, decode_cursor, page_from
from tessera.principal import Principal
from tessera.rights import acting, reach


async def list_users(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None, email: str | None = None
) -> PageOf[User]:
    query = select(User).where(reach.user_filter(principal)).order_by(User.email)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(User.email > after)
    if email is not None:
        query = query.where(User.email == email.lower())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda user: user.email)


async def visible_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.id == user_id, reach.user_filter(principal)))
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    rows = await session.scalars(select(Membership).where(Membership.user_id == user_id))
    return list(rows.all())


async def create_user(session: AsyncSession, principal: Principal, spec: UserSpec) -> User:
    """Create a user, or invite an existing one by e-mail into an organization the caller administers.

    Inviting an existing address adds the membership instead of failing, so the answer does not tell an
    administrator whether someone elsewhere already uses that address.
    """
    if spec.organization_id is None:
        acting.require_vendor_admin(principal, doing="create users outside an organization")
    else:
        path = await reach.path_ids(session, spec.organization_id)
        if not reach.sees_path(principal, path):
            raise InvalidInput("no such organization", issues=[FieldIssue("organization_id", "no such organization")])
        await reach.administered_path(session, principal, spec.organization_id, doing="add members to it")
    user = await session.scalar(select(User).where(User.email == spec.email))
    if user is None:
        user = User(email=spec.email, name=spec.name, locale=spec.locale)
        session.add(user)
        await session.flush()
    elif spec.organization_id is None:
        raise Conflict(f"a user with e-mail {spec.email} exists", issues=[FieldIssue("email", "already used")])
    if spec.organization_id is not None and await session.get(Membership, (user.id, spec.organization_id)) is None:
        session.add(Membership(user_id=user.id, organization_id=spec.organization_id, role=spec.role))
        await session.flush()
    return user


async def put_member(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> tuple[Membership, bool]:
    """Make a visible user a member of an administered organization with `role`; True when newly added."""
    await reach.administered_path(session, principal, organization_id, doing="manage its members")
    await visible_user(session, principal, user_id)
    membership = await session.get(Membership, (user_id, organization_id))
    created = membership is None
    if membership is None:
        membership = Membership(user_id=user_id, organization_id=organization_id, role=role)
        session.add(membership)
    else:
        membership.role = role
    await session.flush()
    return membership, created


async def remove_member(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """End a membership; the tickets the user held by name there go back to the organization, in one transaction."""
    await reach.administered_path(session, principal, organization_id, doing="manage its members")
    await visible_user(session, principal, user_id)
    removed = await session.execute(
        delete(Membership).where(Membership.user_id == user_id, Membership.organization_id == organization_id)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFound("the user is not a member of this organization")
    # The DELETE holds the membership: an allocation to this user that was checking it has committed by now.
    await tickets.return_tickets_of_leaver(session, principal, organization_id, user_id)
