"""Signing in: e-mail and password exchanged for a personal API key, shown once.

A wrong address and a wrong password get the same answer after the same work (an Argon2 verification against
a stand-in hash when there is no such account), so signing in does not tell who has an account.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.apikeys import MAX_SIGNED_IN_KEY_LIFETIME, SIGNED_IN_KEY_LIFETIME, create_api_key
from tessera.auth import passwords
from tessera.auth.emails import normalize_email
from tessera.auth.errors import SignInFailed
from tessera.auth.ratelimit import SignInLimiter
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import ApiKey, ApiKeyKind, User, utcnow
from tessera.rights.scopes import SCOPES

DEFAULT_KEY_LIFETIME = SIGNED_IN_KEY_LIFETIME
MAX_KEY_LIFETIME = MAX_SIGNED_IN_KEY_LIFETIME


async def sign_in(
    session: AsyncSession,
    secret_key: bytes,
    limiter: SignInLimiter,
    *,
    email: str,
    password: str,
    client: str,
    key_name: str,
    scopes: list[str],
    expires_at: datetime | None,
    kind: ApiKeyKind = ApiKeyKind.key,
) -> tuple[ApiKey, str]:
    """A new personal key (or portal session) for the account, or SignInFailed; TooManyAttempts at a limit."""
    try:
        account = normalize_email(email)
    except ValueError:
        account = email.strip().lower()  # still counted and answered like any other wrong address
    now = utcnow()
    expires_at = _expiry(now, expires_at)
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise InvalidInput(
            f"unknown scope {unknown[0]!r}", issues=[FieldIssue("scopes", f"known: {', '.join(sorted(SCOPES))}")]
        )
    user = await session.scalar(select(User).where(func.lower(User.email) == account))
    limiter.attempt(account, client)
    stored = user.password_hash if user is not None else None
    if not await asyncio.to_thread(passwords.verify_password, stored, password):
        raise SignInFailed()
    # verify_password is False without a stored hash, so both exist here.
    assert user is not None
    assert stored is not None
    limiter.succeeded(account)
    if passwords.needs_rehash(stored):
        user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
    return await create_api_key(
        session,
        secret_key,
        name=key_name,
        user_id=user.id,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by_user_id=user.id,
        kind=kind,
    )


def _expiry(now: datetime, asked: datetime | None) -> datetime:
    if asked is None:
        return now + DEFAULT_KEY_LIFETIME
    if asked <= now:
        raise InvalidInput("the expiry lies in the past", issues=[FieldIssue("expires_at", "must be in the future")])
    if asked > now + MAX_KEY_LIFETIME:
        raise InvalidInput(
            "a signed-in key lives at most a year",
            issues=[FieldIssue("expires_at", f"at the latest {(now + MAX_KEY_LIFETIME).date().isoformat()}")],
        )
    return asked
