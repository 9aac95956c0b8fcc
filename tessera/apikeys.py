"""API keys: `tsk_` + 256 random bits, shown once, stored only as an HMAC-SHA256 under the deployment secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotAuthenticated
from tessera.models import ApiKey, Membership, Organization, OrganizationKind, Role, utcnow
from tessera.principal import Principal

KEY_PREFIX = "tsk_"
# Recording every use would turn each read into a write; a minute's precision is enough to spot stale keys.
LAST_USED_PRECISION = timedelta(minutes=1)


def keyed_hash(secret_key: bytes, token: str) -> bytes:
    return hmac.new(secret_key, token.encode(), hashlib.sha256).digest()


def new_token() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_api_key(
    session: AsyncSession,
    secret_key: bytes,
    *,
    name: str,
    user_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret, which is never available again."""
    token = new_token()
    key = ApiKey(
        name=name,
        prefix=token[: len(KEY_PREFIX) + 6],
        secret_hash=keyed_hash(secret_key, token),
        user_id=user_id,
        organization_id=organization_id,
        scopes=scopes or ["*"],
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, token


async def authenticate(session: AsyncSession, secret_key: bytes, token: str) -> Principal:
    """Resolve a bearer token to a principal, or raise NotAuthenticated without saying which check failed."""
    now = utcnow()
    key = None
    if token.startswith(KEY_PREFIX):
        key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == keyed_hash(secret_key, token)))
    if key is None or key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise NotAuthenticated("the API key is unknown, revoked or expired")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
        key.last_used_at = now
    roles: dict[uuid.UUID, Role] = {}
    if key.user_id is not None:
        rows = await session.execute(
            select(Membership.organization_id, Membership.role).where(Membership.user_id == key.user_id)
        )
        roles = {org_id: Role(role) for org_id, role in rows.all()}
    elif key.organization_id is not None:
        roles = {key.organization_id: Role.admin}
    vendor_ids = set(
        (await session.scalars(select(Organization.id).where(Organization.kind == OrganizationKind.vendor))).all()
    )
    vendor_admin = any(roles.get(org_id) == Role.admin for org_id in vendor_ids)
    return Principal(
        api_key_id=key.id,
        user_id=key.user_id,
        service_organization_id=key.organization_id if key.user_id is None else None,
        scopes=frozenset(key.scopes),
        roles=roles,
        vendor_admin=vendor_admin,
    )
