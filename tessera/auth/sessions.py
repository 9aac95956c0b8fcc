"""Portal sessions: a signed-in browser holds an API key of kind `session` in an HttpOnly cookie.

Being a key, a session resolves to the same principal an API key would (memberships, vendor rights, scopes),
so the pages obey exactly the API's rules. It expires after `portal_session_lifetime`, and is revoked at
sign-out and whenever the account's password changes (every session of the account ends then).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.apikeys import SESSION_PREFIX, create_api_key, keyed_hash
from tessera.auth.keyring import as_ring
from tessera.auth.ratelimit import SignInLimiter
from tessera.auth.signin import sign_in
from tessera.models import ApiKey, ApiKeyKind, utcnow

SESSION_NAME = "portal session"


async def start_session(
    session: AsyncSession,
    secret_key: bytes,
    limiter: SignInLimiter,
    *,
    email: str,
    password: str,
    client: str,
    lifetime: timedelta,
) -> tuple[ApiKey, str]:
    """Sign in with e-mail and password (rate limited like the API's sign-in); the token goes into the cookie."""
    return await sign_in(
        session,
        secret_key,
        limiter,
        email=email,
        password=password,
        client=client,
        key_name=SESSION_NAME,
        scopes=["*"],
        expires_at=utcnow() + lifetime,
        kind=ApiKeyKind.session,
    )


async def open_session(
    session: AsyncSession, secret_key: bytes, *, user_id: uuid.UUID, lifetime: timedelta
) -> tuple[ApiKey, str]:
    """A session for someone who has just proved who they are otherwise (an accepted invitation, with the
    password they chose on it): the same key `start_session` would give, without a second password check."""
    return await create_api_key(
        session,
        secret_key,
        name=SESSION_NAME,
        user_id=user_id,
        scopes=["*"],
        expires_at=utcnow() + lifetime,
        created_by_user_id=user_id,
        kind=ApiKeyKind.session,
    )


async def end_session(session: AsyncSession, secret_key: bytes, token: str) -> None:
    """Revoke the session behind a cookie (unknown or ended ones are ignored: signing out twice is fine)."""
    if not token.startswith(SESSION_PREFIX):
        return
    hashes = [keyed_hash(secret, token) for secret in as_ring(secret_key).secrets]
    key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash.in_(hashes), ApiKey.kind == ApiKeyKind.session))
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()


async def end_sessions_of(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every live portal session of an account (after its password changed)."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.kind == ApiKeyKind.session, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
