"""Users and their memberships. An administrator of a node manages the members of its whole subtree."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.auth.emails import normalize_email
from tessera.auth.invitations import InvitationPolicy, create_invitation
from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.licenses import tickets
from tessera.models import Invitation, Membership, Role, User
from tessera.organizations.schema import UserSpec
from tessera.pagination import PageOf, after_text, page_from
from tessera.principal import Principal
from tessera.rights import acting, reach


async def list_users(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None, email: str | None = None
) -> PageOf[User]:
    query = select(User).where(reach.user_filter(principal)).order_by(User.email)
    after = after_text(cursor, "users")
    if after is not None:
        query = query.where(User.email > after)
    if email is not None:
        try:
            query = query.where(func.lower(User.email) == normalize_email(email))
        except ValueError:
            query = query.where(false())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda user: user.email, scope="users")


async def visible_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.id == user_id, reach.user_filter(principal)))
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    rows = await session.scalars(select(Membership).where(Membership.user_id == user_id))
    return list(rows.all())


async def create_user(
    session: AsyncSession, principal: Principal, spec: UserSpec, policy: InvitationPolicy
) -> Invitation:
    """Invite an address into an organization the caller administers (vendor admins: also into none).

    Nobody is enrolled without consent: the user row and the membership are written when the invitee redeems
    the invitation. The answer is the invitation alone, the same for a known and an unknown address, so it
    tells the caller nothing about accounts beyond its reach.
    """
    return await invite(
        session,
        principal,
        policy,
        email=spec.email,
        organization_id=spec.organization_id,
        role=spec.role,
        name=spec.name,
        locale=spec.locale,
    )


async def invite(
    session: AsyncSession,
    principal: Principal,
    policy: InvitationPolicy,
    *,
    email: str,
    organization_id: uuid.UUID | None,
    role: Role,
    name: str = "",
    locale: str | None = None,
) -> Invitation:
    """Invite a canonical address into an organization the caller administers (the checks of `create_user`)."""
    # The portal's invite form asks no name: the invitee types it on accepting (an empty one falls back there).
    if organization_id is None:
        acting.require_vendor_admin(principal, doing="invite users outside an organization")
    else:
        path = await reach.path_ids(session, organization_id)
        if not reach.sees_path(principal, path):
            raise InvalidInput("no such organization", issues=[FieldIssue("organization_id", "no such organization")])
        await reach.administered_path(session, principal, organization_id, doing="add members to it")
    invitation, _token = await create_invitation(
        session,
        policy,
        email=email,
        organization_id=organization_id,
        role=role,
        name=name,
        locale=locale,
        invited_by=principal,
    )
    return invitation


async def put_member(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
    policy: InvitationPolicy,
) -> Membership | Invitation:
    """Change the role of a member of an administered organization, or invite a visible user to become one.

    A new membership always waits for the user's consent (an invitation), even for users the caller sees.
    """
    user, membership = await _set_role(session, principal, organization_id, user_id, role)
    if membership is not None:
        return membership
    invitation, _token = await create_invitation(
        session,
        policy,
        email=user.email.lower(),
        organization_id=organization_id,
        role=role,
        name=user.name,
        locale=user.locale,
        invited_by=principal,
    )
    return invitation


async def change_role(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    """Change a member's role, and only that: someone who is no member (any more) is not invited instead."""
    _user, membership = await _set_role(session, principal, organization_id, user_id, role)
    if membership is None:
        raise NotFound("the user is not a member of this organization")
    return membership


async def _set_role(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> tuple[User, Membership | None]:
    await reach.administered_path(session, principal, organization_id, doing="manage its members")
    user = await visible_user(session, principal, user_id)
    # One conditional UPDATE rather than a change to a row read first: a removal committed in between leaves
    # nothing to update (instead of failing the flush), and the user, no longer a member, is invited like anyone.
    changed = await session.execute(
        update(Membership)
        .where(Membership.user_id == user_id, Membership.organization_id == organization_id)
        .values(role=role)
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return user, None
    membership = await session.get(Membership, (user_id, organization_id), populate_existing=True)
    assert membership is not None
    return user, membership


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
