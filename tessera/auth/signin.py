"""Signing in: e-mail and password exchanged for a personal API key, shown once.

A wrong address and a wrong password get the same answer after the same work (an Argon2 verification against
a stand-in hash when there is no such account), so signing in does not tell who has an account.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.apikeys import create_api_key
from tessera.auth import passwords
from tessera.auth.emails import normalize_email
from tessera.auth.errors import SignInFailed
from tessera.auth.ratelimit import SignInLimiter
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import ApiKey, User, utcnow
from tessera.rights.scopes import SCOPES

DEFAULT_KEY_LIFETIME = timedelta(days=30)
MAX_KEY_LIFETIME = timedelta(days=365)


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
) -> tuple[ApiKey, str]:
    """A new personal key for the account, or SignInFailed; TooManyAttempts once a limit is used up."""
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
