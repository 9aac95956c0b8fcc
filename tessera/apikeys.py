"""API keys: `tsk_` + 256 random bits, shown once, stored only as an HMAC-SHA256 under the deployment secret.

Each hash records the version of the secret it was made with. After a rotation a key made under an earlier
secret still authenticates, and its hash is rewritten under the newest secret the first time it is used, so
`secret_version` shows which keys still depend on a retired secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.auth.keyring import as_ring
from tessera.errors import FieldIssue, InvalidInput, NotAuthenticated, NotFound
from tessera.models import ApiKey, ApiKeyKind, Membership, Organization, OrganizationKind, Role, utcnow
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach, scopes

KEY_PREFIX = "tsk_"
SESSION_PREFIX = "tsp_"
PREFIXES = {ApiKeyKind.key: KEY_PREFIX, ApiKeyKind.session: SESSION_PREFIX}
# Recording every use would turn each read into a write; a minute's precision is enough to spot stale keys.
LAST_USED_PRECISION = timedelta(minutes=1)
SIGNED_IN_KEY_LIFETIME = timedelta(days=30)
"""A key made by signing in with a password (API or portal) lives this long unless asked otherwise."""
MAX_SIGNED_IN_KEY_LIFETIME = timedelta(days=365)


def keyed_hash(secret_key: bytes, token: str) -> bytes:
    """The hash under one secret (a key ring hashes with its newest)."""
    return hmac.new(bytes(secret_key), token.encode(), hashlib.sha256).digest()


def new_token(kind: ApiKeyKind = ApiKeyKind.key) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


async def create_api_key(
    session: AsyncSession,
    secret_key: bytes,
    *,
    name: str,
    user_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by_user_id: uuid.UUID | None = None,
    kind: ApiKeyKind = ApiKeyKind.key,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret, which is never available again."""
    token = new_token(kind)
    ring = as_ring(secret_key)
    key = ApiKey(
        name=name,
        kind=kind,
        prefix=token[: len(KEY_PREFIX) + 6],
        secret_hash=keyed_hash(ring.current, token),
        secret_version=ring.version,
        user_id=user_id,
        organization_id=organization_id,
        scopes=scopes or ["*"],
        expires_at=expires_at,
        created_by_user_id=created_by_user_id,
    )
    session.add(key)
    await session.flush()
    return key, token


async def authenticate(
    session: AsyncSession, secret_key: bytes, token: str, *, kind: ApiKeyKind = ApiKeyKind.key
) -> Principal:
    """Resolve a token of one kind to a principal, or raise NotAuthenticated without saying which check failed.

    A portal session token is refused as a bearer key and an API key as a session cookie: each credential
    works only where it was issued for.
    """
    now = utcnow()
    ring = as_ring(secret_key)
    key = None
    if token.startswith(PREFIXES[kind]):
        hashes = [keyed_hash(secret, token) for secret in ring.secrets]
        key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash.in_(hashes), ApiKey.kind == kind))
    if key is None or key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        what = "API key" if kind == ApiKeyKind.key else "session"
        raise NotAuthenticated(f"the {what} is unknown, revoked or expired")
    if key.secret_version != ring.version:
        key.secret_hash, key.secret_version = keyed_hash(ring.current, token), ring.version
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


async def issue_api_key(
    session: AsyncSession,
    secret_key: bytes,
    principal: Principal,
    *,
    name: str,
    requested_scopes: list[str],
    expires_at: datetime | None,
    organization_id: uuid.UUID | None,
) -> tuple[ApiKey, str]:
    """A key for the caller itself, or for the service account of an organization the caller administers.

    Neither kind can exceed the caller: scopes are a subset of the issuing key's, a key issued by an expiring
    key expires no later (without an expiry asked for, it gets the issuer's), and a service account acts as
    administrator of its own organization only, which lies within the issuer's administered subtree.
    """
    granted = scopes.check_new_scopes(principal, requested_scopes)
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the expiry lies in the past", issues=[FieldIssue("expires_at", "must be in the future")])
    issuer = await session.get(ApiKey, principal.api_key_id)
    limit = issuer.expires_at if issuer is not None else None
    if issuer is not None and issuer.kind == ApiKeyKind.session:
        # Someone signed in to the portal with a password: the key is what `POST /auth/keys` would have given.
        limit = utcnow() + MAX_SIGNED_IN_KEY_LIFETIME
        expires_at = expires_at or utcnow() + SIGNED_IN_KEY_LIFETIME
    if limit is not None:
        if expires_at is None:
            expires_at = limit
        elif expires_at > limit:
            raise InvalidInput(
                "a new key cannot outlive the key that issues it",
                issues=[FieldIssue("expires_at", f"at the latest {limit.isoformat()}, when the issuing key expires")],
            )
    if organization_id is not None:
        path = await reach.path_ids(session, organization_id)
        if not reach.sees_path(principal, path):
            raise InvalidInput("no such organization", issues=[FieldIssue("organization_id", "no such organization")])
        await reach.administered_path(session, principal, organization_id, doing="issue its service keys")
        owner_user = None
    elif principal.user_id is None:
        raise InvalidInput(
            "a service account issues keys for an organization only",
            issues=[FieldIssue("organization_id", "required when a service-account key asks")],
        )
    else:
        owner_user = principal.user_id
    return await create_api_key(
        session,
        secret_key,
        name=name,
        user_id=owner_user,
        organization_id=organization_id,
        scopes=granted,
        expires_at=expires_at,
        created_by_user_id=principal.user_id,
    )


async def list_api_keys(
    session: AsyncSession, principal: Principal, *, organization_id: uuid.UUID | None, limit: int, cursor: str | None
) -> PageOf[ApiKey]:
    """The caller's own keys, or the service-account keys of an organization it administers; newest first."""
    if organization_id is None and principal.user_id is None:
        organization_id = principal.service_organization_id
    if organization_id is not None:
        await reach.administered_path(session, principal, organization_id, doing="list its service keys")
        query = select(ApiKey).where(ApiKey.organization_id == organization_id, ApiKey.user_id.is_(None))
    else:
        query = select(ApiKey).where(ApiKey.user_id == principal.user_id)
    query = query.where(ApiKey.kind == ApiKeyKind.key)
    query = query.where(newest_first_after(cursor, ApiKey.created_at, ApiKey.id, "api-keys"))
    query = query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda key: (key.created_at, key.id), scope="api-keys")


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> None:
    """Revoke one's own key, or a service key of an administered organization; others are not found."""
    key = await session.get(ApiKey, key_id)
    mine = key is not None and principal.user_id is not None and key.user_id == principal.user_id
    if key is not None and not mine and key.user_id is None and key.organization_id is not None:
        mine = reach.administers_path(principal, await reach.path_ids(session, key.organization_id))
    if key is None or not mine:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await session.flush()
