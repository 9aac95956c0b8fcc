"""Invitations: how people join. An administrator invites an address into an organization; the owner of the
address redeems the one-time link, sets a password if the account has none, and only then is a member.

The inviting administrator never sees the token (it travels only in the message to the address), so nobody
can accept an invitation on someone else's behalf, and the answer to an invitation is the same whether the
address belongs to an existing account or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.auth import passwords
from tessera.auth.emails import normalize_email
from tessera.auth.errors import (
    InvitationAlreadyRedeemed,
    InvitationExpired,
    InvitationForAnotherAddress,
    InvitationNotFound,
)
from tessera.email.locales import DEFAULT_LOCALE, choose, recipient_locale, translated_name, translations
from tessera.errors import Conflict, FieldIssue, InvalidInput
from tessera.models import (
    ApiKey,
    EventKind,
    Invitation,
    Membership,
    Organization,
    OrganizationKind,
    Role,
    User,
    utcnow,
)
from tessera.notifications import render, template_environment, write_event
from tessera.principal import Principal
from tessera.rights import reach
from tessera.settings import Settings

TEMPLATE = "invitation.txt.j2"
LINK_PATH = "/invitations/"


@dataclass(frozen=True)
class InvitationPolicy:
    """What every invitation needs from the deployment's settings."""

    ttl: timedelta
    portal_url: str
    templates_dir: Path
    password_min_length: int = 12

    @classmethod
    def from_settings(cls, settings: Settings) -> InvitationPolicy:
        return cls(
            ttl=settings.invitation_ttl,
            portal_url=settings.portal_url.rstrip("/"),
            templates_dir=settings.config_dir / "templates",
            password_min_length=settings.password_min_length,
        )


def token_hash(token: str) -> bytes:
    # The token holds 256 random bits: a plain hash cannot be reversed, and survives a rotation of the secret.
    return hashlib.sha256(token.encode()).digest()


def invitation_link(policy: InvitationPolicy, token: str) -> str:
    return f"{policy.portal_url}{LINK_PATH}{token}"


async def create_invitation(
    session: AsyncSession,
    policy: InvitationPolicy,
    *,
    email: str,
    organization_id: uuid.UUID | None,
    role: Role,
    name: str = "",
    locale: str | None = None,
    invited_by: Principal | None = None,
) -> tuple[Invitation, str]:
    """Store an invitation and queue its message in the outbox; returns it with the token (for the CLI only).

    The message is kept out of every organization's event list: the link in it is the invitee's credential. It
    is written in the invitee's language: an existing account's locale, else `locale` (what the new account will
    have), else the organization's, else English.
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Only the newest link for the same address and organization works, so a repeated invitation leaves no
    # second valid credential behind; the older links answer as expired.
    same_place = (
        Invitation.organization_id.is_(None)
        if organization_id is None
        else Invitation.organization_id == organization_id
    )
    await session.execute(
        update(Invitation)
        .where(Invitation.email == email, same_place, Invitation.redeemed_at.is_(None), Invitation.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    organization = await session.get(Organization, organization_id) if organization_id else None
    account_locale = recipient_locale(locale, organization.locale if organization else None)
    existing_locale = await session.scalar(select(User.locale).where(func.lower(User.email) == email))
    invitation = Invitation(
        created_at=now,
        token_hash=token_hash(token),
        email=email,
        name=name,
        locale=account_locale,
        organization_id=organization_id,
        role=role,
        invited_by_user_id=invited_by.user_id if invited_by else None,
        invited_by_api_key_id=invited_by.api_key_id if invited_by else None,
        expires_at=now + policy.ttl,
    )
    session.add(invitation)
    await session.flush()
    inviter = await session.get(User, invited_by.user_id) if invited_by and invited_by.user_id else None
    language = choose(existing_locale or account_locale, translations(policy.templates_dir, TEMPLATE))
    subject, body = render(
        template_environment(policy.templates_dir),
        translated_name(language, TEMPLATE) if language else TEMPLATE,
        {
            "invitation": {
                "email": email,
                "name": name,
                "role": str(role),
                "expires_at": invitation.expires_at.isoformat(timespec="minutes"),
            },
            "organization": {"id": str(organization.id), "name": organization.name} if organization else None,
            "inviter": {"name": inviter.name, "email": inviter.email} if inviter else None,
            "link": invitation_link(policy, token),
            "portal_url": policy.portal_url,
        },
    )
    await write_event(
        session,
        key=f"invitation-{invitation.id}",
        kind=EventKind.notification,
        name=TEMPLATE,
        organization_id=None,
        order_id=None,
        recipients=[email],
        subject=subject,
        body=body,
        payload={"invitation_id": str(invitation.id), "locale": language or DEFAULT_LOCALE},
    )
    return invitation, token


async def invite_as_operator(
    session: AsyncSession,
    policy: InvitationPolicy,
    *,
    email: str,
    organization_id: uuid.UUID | None,
    role: Role,
    name: str = "",
) -> tuple[Invitation, str]:
    """An invitation made from the command line, by whoever runs Tessera (and so may do anything)."""
    if organization_id is not None and await session.get(Organization, organization_id) is None:
        raise InvalidInput("no such organization", issues=[FieldIssue("organization", "no such organization")])
    try:
        address = normalize_email(email)
    except ValueError as error:
        raise InvalidInput(str(error), issues=[FieldIssue("email", str(error))]) from None
    return await create_invitation(
        session, policy, email=address, organization_id=organization_id, role=role, name=name
    )


async def usable_invitation(session: AsyncSession, token: str) -> Invitation:
    """The invitation with this token, or why it cannot be redeemed (unknown, redeemed, expired)."""
    invitation = await session.scalar(select(Invitation).where(Invitation.token_hash == token_hash(token)))
    if invitation is None:
        raise InvitationNotFound("no such invitation: check the link, or ask for a new one")
    if invitation.redeemed_at is not None:
        raise InvitationAlreadyRedeemed("this invitation has been redeemed already: sign in instead")
    if invitation.expires_at <= utcnow():
        raise InvitationExpired("this invitation has expired: ask the administrator for a new one")
    if not await _inviter_may_still_invite(session, invitation):
        raise InvitationExpired(
            "this invitation was withdrawn: whoever sent it may no longer invite there; ask an administrator"
        )
    return invitation


async def _inviter_may_still_invite(session: AsyncSession, invitation: Invitation) -> bool:
    """Whether the key that sent the invitation could still send it: rights are those at the moment of joining.

    Otherwise an administrator about to be removed (or a leaked key about to be revoked) could invite a second
    address of their own and walk back in after the removal. The inviter's memberships are locked until the
    redeem commits, so a removal arriving meanwhile waits for it and then takes the new member's place too.
    """
    if invitation.invited_by_api_key_id is None and invitation.invited_by_user_id is None:
        return True  # the operator, from the command line, may do anything
    key = await session.get(ApiKey, invitation.invited_by_api_key_id) if invitation.invited_by_api_key_id else None
    if key is None or key.revoked_at is not None:
        return False
    roles: dict[uuid.UUID, Role] = {}
    if key.user_id is not None:
        rows = await session.execute(
            select(Membership.organization_id, Membership.role)
            .where(Membership.user_id == key.user_id)
            .with_for_update()
        )
        roles = {organization_id: Role(role) for organization_id, role in rows.all()}
    elif key.organization_id is not None:
        roles = {key.organization_id: Role.admin}
    inviter = Principal(
        api_key_id=key.id,
        user_id=key.user_id,
        service_organization_id=key.organization_id if key.user_id is None else None,
        scopes=frozenset(key.scopes),
        roles=roles,
    )
    if invitation.organization_id is None:
        vendors = await session.scalars(select(Organization.id).where(Organization.kind == OrganizationKind.vendor))
        return any(roles.get(vendor) == Role.admin for vendor in vendors)
    return reach.administers_path(inviter, await reach.path_ids(session, invitation.organization_id))


async def redeem_invitation(
    session: AsyncSession,
    policy: InvitationPolicy,
    *,
    token: str,
    email: str,
    password: str | None,
    name: str | None = None,
) -> tuple[User, Invitation]:
    """Activate the account (a new one, or one without a password) and the membership the invitation names.

    Exactly one of two concurrent redeems wins: the invitation is claimed by one conditional update.
    """
    invitation = await usable_invitation(session, token)
    now = utcnow()
    if invitation.email != email:
        raise InvitationForAnotherAddress()
    # Claimed first, so a redeem that lost the race says so rather than judging the account the winner set up;
    # a refusal below rolls the claim back with the rest of the unit of work, and the link stays valid.
    claimed = await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.redeemed_at.is_(None), Invitation.expires_at > now)
        .values(redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvitationAlreadyRedeemed("this invitation has been redeemed already: sign in instead")
    user = await session.scalar(select(User).where(func.lower(User.email) == invitation.email))
    if user is None or user.password_hash is None:
        if password is None:
            raise InvalidInput("choose a password", issues=[FieldIssue("password", "required to activate the account")])
        passwords.check_new_password(password, email=invitation.email, min_length=policy.password_min_length)
    elif password is not None:
        raise InvalidInput(
            "this account has a password already",
            issues=[FieldIssue("password", "leave it out: accepting needs no new password")],
        )
    if user is None:
        user = User(
            email=invitation.email,
            name=name or invitation.name or invitation.email.split("@", 1)[0],
            locale=invitation.locale,
        )
        try:
            async with session.begin_nested():
                session.add(user)
        except IntegrityError:
            raise Conflict("this account was activated a moment ago: sign in instead") from None
    if password is not None:
        user.password_hash = await _hash(password)
        if name:
            # The account is activated now (it had no password): the name its owner typed replaces the one it
            # was created with (a bootstrapped administrator's, or the inviter's guess).
            user.name = name
    if invitation.organization_id is not None:
        # A conditional UPDATE, then an INSERT: a removal of an existing membership committed meanwhile leaves
        # nothing to update (rather than failing the flush), and accepting the invitation makes them a member.
        changed = await session.execute(
            update(Membership)
            .where(Membership.user_id == user.id, Membership.organization_id == invitation.organization_id)
            .values(role=invitation.role)
            .execution_options(synchronize_session=False)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            session.add(Membership(user_id=user.id, organization_id=invitation.organization_id, role=invitation.role))
    await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id)
        .values(redeemed_by_user_id=user.id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await session.refresh(invitation)
    return user, invitation


async def _hash(password: str) -> str:
    # Argon2id takes a noticeable fraction of a second on purpose: keep the event loop free meanwhile.
    return await asyncio.to_thread(passwords.hash_password, password)
