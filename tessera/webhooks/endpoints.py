"""Webhook endpoints: registered, changed, rotated and deleted by administrators of their organization or above.

An endpoint is visible only to those administrators (members see none: deliveries carry business data), so an
endpoint out of reach is a 404 like a missing one. It receives the events of its organization's subtree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import utcnow
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach
from tessera.webhooks.addresses import IPNetwork, check_endpoint_url
from tessera.webhooks.event_types import EVENT_TYPES, known_event_types
from tessera.webhooks.models import WebhookEndpoint
from tessera.webhooks.secrets import decrypt_secret, encrypt_secret, generate_secret
from tessera.webhooks.status import EndpointStatus

LIST_SCOPE = "webhook-endpoints"


@dataclass(frozen=True)
class UrlRules:
    """What endpoint URLs may name (from the settings)."""

    allow_http_loopback: bool = False
    allowed_networks: Sequence[IPNetwork] = ()

    def check(self, url: str) -> str:
        return check_endpoint_url(
            url, allow_http_loopback=self.allow_http_loopback, allowed_networks=self.allowed_networks
        )


def endpoint_filter(principal: Principal) -> ColumnElement[bool]:
    """Live endpoints of the organizations the caller administers (vendor admins: all)."""
    live = WebhookEndpoint.deleted_at.is_(None)
    if principal.vendor_admin:
        return and_(live, true())
    if not principal.admin_of:
        return false()
    return and_(live, WebhookEndpoint.organization_id.in_(reach.subtree_ids(principal.admin_of)))


def check_event_types(names: Sequence[str], field: str = "event_types") -> list[str]:
    """The names, deduplicated in their order, or InvalidInput listing the allowed ones."""
    allowed = ", ".join(known_event_types())
    unknown = [(index, name) for index, name in enumerate(names) if name not in EVENT_TYPES]
    if unknown:
        issues = [
            FieldIssue(f"{field}.{index}", f"unknown event type {name!r}; allowed: {allowed}")
            for index, name in unknown
        ]
        raise InvalidInput(f"unknown event type(s); allowed: {allowed}", issues=issues)
    if not names:
        raise InvalidInput("name at least one event type", issues=[FieldIssue(field, f"allowed: {allowed}")])
    return list(dict.fromkeys(names))


async def get_endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, endpoint_filter(principal))
    )
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


async def list_endpoints(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    organization_id: uuid.UUID | None = None,
) -> PageOf[WebhookEndpoint]:
    """Newest first."""
    query = select(WebhookEndpoint).where(endpoint_filter(principal))
    if organization_id is not None:
        query = query.where(WebhookEndpoint.organization_id == organization_id)
    query = query.where(
        newest_first_after(cursor, WebhookEndpoint.created_at, WebhookEndpoint.id, LIST_SCOPE)
    ).order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda endpoint: (endpoint.created_at, endpoint.id), scope=LIST_SCOPE)


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    secret_key: bytes,
    rules: UrlRules,
    *,
    organization_id: uuid.UUID,
    url: str,
    event_types: Sequence[str],
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is returned here and never again."""
    path = await reach.path_ids(session, organization_id)
    if not reach.sees_path(principal, path):
        raise InvalidInput("no such organization", issues=[FieldIssue("organization_id", "no such organization")])
    await reach.administered_path(session, principal, organization_id, doing="register its webhook endpoints")
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        organization_id=organization_id,
        url=rules.check(url),
        event_types=check_event_types(event_types),
        description=description,
        status=EndpointStatus.enabled,
        created_by_user_id=principal.user_id,
        created_by_api_key_id=principal.api_key_id,
    )
    secret = generate_secret()
    endpoint.secret_encrypted = encrypt_secret(secret_key, endpoint.id, secret)
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    rules: UrlRules,
    endpoint_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    status: EndpointStatus | None = None,
) -> WebhookEndpoint:
    """Change what is given; enabling a disabled endpoint forgets its failures (it starts afresh)."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if url is not None:
        endpoint.url = rules.check(url)
    if event_types is not None:
        endpoint.event_types = check_event_types(event_types)
    if description is not None:
        endpoint.description = description
    if status is not None and status != endpoint.status:
        endpoint.status = status
        if status == EndpointStatus.enabled:
            endpoint.disabled_at = endpoint.disabled_reason = endpoint.failing_since = None
        else:
            endpoint.disabled_at, endpoint.disabled_reason = utcnow(), "disabled by an administrator"
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> None:
    """Deleted at once: no further attempt is made; its deliveries stay recorded."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    endpoint.deleted_at = utcnow()
    await session.flush()


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    secret_key: bytes,
    endpoint_id: uuid.UUID,
    *,
    overlap: timedelta,
) -> tuple[WebhookEndpoint, str]:
    """A new secret (returned once); the old one keeps signing for `overlap` (zero: dropped at once)."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    now = utcnow()
    old = decrypt_secret(secret_key, endpoint.id, endpoint.secret_encrypted)
    secret = generate_secret()
    endpoint.secret_encrypted = encrypt_secret(secret_key, endpoint.id, secret)
    if overlap > timedelta(0):
        endpoint.previous_secret_encrypted = encrypt_secret(secret_key, endpoint.id, old)
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret_encrypted = endpoint.previous_secret_expires_at = None
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret


def signing_secrets(secret_key: bytes, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while it overlaps."""
    found = [decrypt_secret(secret_key, endpoint.id, endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted is not None and expires is not None and now < expires:
        found.append(decrypt_secret(secret_key, endpoint.id, endpoint.previous_secret_encrypted))
    return found
