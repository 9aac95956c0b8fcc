"""Password resets: a one-time link, sent to the account's address, to choose a new password.

Asking answers the same whether an account exists or not (the page says a link is on its way "if an account
exists"), and is rate limited per address and per client before anything is looked up. Only a hash of the
token is stored; a newer request ends the older links; a link works once and expires. Setting the password
ends every portal session of the account; its API keys stay.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.auth import passwords
from tessera.auth.emails import normalize_email
from tessera.auth.errors import ResetExpired, ResetNotFound, ResetUsed
from tessera.auth.invitations import token_hash
from tessera.auth.ratelimit import SignInLimiter
from tessera.auth.sessions import end_sessions_of
from tessera.email.locales import DEFAULT_LOCALE, choose, translated_name, translations
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import EventKind, PasswordReset, User, utcnow
from tessera.notifications import render, template_environment, write_event
from tessera.settings import Settings

TEMPLATE = "password_reset.txt.j2"
LINK_PATH = "/password/reset/"


@dataclass(frozen=True)
class ResetPolicy:
    """What every reset needs from the deployment's settings."""

    ttl: timedelta
    portal_url: str
    templates_dir: Path
    password_min_length: int = 12

    @classmethod
    def from_settings(cls, settings: Settings) -> ResetPolicy:
        return cls(
            ttl=settings.password_reset_ttl,
            portal_url=settings.portal_url.rstrip("/"),
            templates_dir=settings.config_dir / "templates",
            password_min_length=settings.password_min_length,
        )


def reset_limiter(settings: Settings) -> SignInLimiter:
    """Counts reset requests per address and per client (never cleared: a request does not "succeed")."""
    return SignInLimiter(settings.password_reset_limit_account, settings.password_reset_limit_client)


async def request_reset(
    session: AsyncSession, policy: ResetPolicy, limiter: SignInLimiter, *, email: str, client: str
) -> PasswordReset | None:
    """Queue a reset link for the account with this address, if there is one; None (and nothing sent) if not.

    A malformed address is refused (that tells nothing about accounts); TooManyAttempts at a limit, counted
    before the account is looked up so the limit is the same for addresses with and without an account.
    """
    try:
        address = normalize_email(email)
    except ValueError as error:
        raise InvalidInput(str(error), issues=[FieldIssue("email", str(error))]) from None
    limiter.attempt(address, client)
    user = await session.scalar(select(User).where(func.lower(User.email) == address))
    if user is None:
        return None
    # Only the newest link works: an older one (in a mailbox read by someone else, say) answers as expired.
    await end_other_resets(session, user.id)
    now = utcnow()
    token = secrets.token_urlsafe(32)
    reset = PasswordReset(created_at=now, token_hash=token_hash(token), user_id=user.id, expires_at=now + policy.ttl)
    session.add(reset)
    await session.flush()
    language = choose(user.locale, translations(policy.templates_dir, TEMPLATE))
    subject, body = render(
        template_environment(policy.templates_dir),
        translated_name(language, TEMPLATE) if language else TEMPLATE,
        {
            "user": {"name": user.name, "email": user.email},
            "expires_at": reset.expires_at.isoformat(timespec="minutes"),
            "link": f"{policy.portal_url}{LINK_PATH}{token}",
            "portal_url": policy.portal_url,
        },
    )
    # Kept out of every organization's event list, like invitations: the link is a credential.
    await write_event(
        session,
        key=f"password-reset-{reset.id}",
        kind=EventKind.notification,
        name=TEMPLATE,
        organization_id=None,
        order_id=None,
        recipients=[user.email],
        subject=subject,
        body=body,
        payload={"password_reset_id": str(reset.id), "locale": language or DEFAULT_LOCALE},
    )
    return reset


async def usable_reset(session: AsyncSession, token: str) -> tuple[PasswordReset, User]:
    """The reset with this token and its account, or why it cannot be used (unknown, used, expired)."""
    reset = await session.scalar(select(PasswordReset).where(PasswordReset.token_hash == token_hash(token)))
    if reset is None:
        raise ResetNotFound("no such link: check it, or ask for a new one")
    if reset.used_at is not None:
        raise ResetUsed("this link has been used already: ask for a new one if you need to")
    if reset.expires_at <= utcnow():
        raise ResetExpired("this link has expired, or a newer one replaced it: ask for a new one")
    user = await session.get(User, reset.user_id)
    if user is None:  # pragma: no cover - the reset is deleted with its account
        raise ResetNotFound("no such link: check it, or ask for a new one")
    return reset, user


async def complete_reset(session: AsyncSession, policy: ResetPolicy, *, token: str, password: str) -> User:
    """Set the account's new password with the link's token; every portal session of the account ends.

    Exactly one of two concurrent uses wins: the link is claimed by one conditional update.
    """
    reset, user = await usable_reset(session, token)
    passwords.check_new_password(password, email=user.email, min_length=policy.password_min_length)
    # Hashed before the claim, so the row is not held locked through the (deliberately slow) hash.
    hashed = await asyncio.to_thread(passwords.hash_password, password)
    now = utcnow()
    claimed = await session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ResetUsed("this link has been used already: ask for a new one if you need to")
    await end_other_resets(session, user.id)
    user.password_hash = hashed
    await end_sessions_of(session, user.id)
    await session.flush()
    return user


async def end_other_resets(session: AsyncSession, user_id: uuid.UUID) -> None:
    """End every unused link of the account (its password was just set, one way or another)."""
    now = utcnow()
    await session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
