"""One attempt of a delivery, as the database sees it: what to send, then what happened and what comes next.

`prepare` reads (the body, the signed headers, the URL) and `record` writes, in separate short transactions,
so no database lock is held while a receiver takes its time. `record` decides in the same transaction that
records the attempt: delivered (set once, by a conditional update: an attempt repeated after a crash never
records a second delivery), failed for good, or wait and retry; and it disables an endpoint that answered 410 or
has been failing for longer than the retry period, telling its administrators through the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.email.locales import DEFAULT_LOCALE, split_translated, translated_name
from tessera.email.recipients import by_language
from tessera.models import Event, EventKind, Membership, Role, User
from tessera.notifications import render, write_event
from tessera.rights.reach import path_ids
from tessera.webhooks.deliveries import load_delivery
from tessera.webhooks.endpoints import signing_secrets
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tessera.webhooks.schedule import next_delay
from tessera.webhooks.sender import Outcome, SendResult
from tessera.webhooks.signing import event_body, signed_headers
from tessera.webhooks.status import DeliveryStatus, EndpointStatus

DISABLED_TEMPLATE = "webhook_endpoint_disabled.txt.j2"


@dataclass(frozen=True)
class Prepared:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Finished:
    """The delivery is over already (recorded by an earlier run of this attempt, or its endpoint went away)."""

    status: DeliveryStatus
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    next_delay_seconds: float = 0.0
    error: str | None = None


async def prepare(
    session: AsyncSession, secret_key: bytes, delivery_id: uuid.UUID, now: datetime
) -> Prepared | Finished:
    delivery = await load_delivery(session, delivery_id)
    if delivery.status != DeliveryStatus.pending:
        return Finished(DeliveryStatus(delivery.status), delivery.last_status_code, delivery.last_error)
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    event = await session.get(Event, delivery.event_id)
    reason = None
    if endpoint is None or endpoint.deleted_at is not None:
        reason = "the endpoint was deleted"
    elif endpoint.status != EndpointStatus.enabled:
        reason = f"the endpoint is disabled ({endpoint.disabled_reason or 'by an administrator'})"
    elif event is None:
        reason = "the event no longer exists"
    if reason is not None or endpoint is None or event is None:
        await _finish(session, delivery, DeliveryStatus.failed, reason, now)
        return Finished(DeliveryStatus.failed, delivery.last_status_code, reason)
    body = event_body(str(event.id), event.name, event.created_at, dict(event.payload))
    headers = signed_headers(str(event.id), body, signing_secrets(secret_key, endpoint, now), now)
    return Prepared(url=endpoint.url, body=body, headers=headers)


async def _finish(
    session: AsyncSession, delivery: WebhookDelivery, status: DeliveryStatus, error: str | None, now: datetime
) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == DeliveryStatus.pending)
        .values(status=status, last_error=error, next_attempt_at=None, last_attempt_at=delivery.last_attempt_at or now)
    )


async def record(
    session: AsyncSession,
    templates: SandboxedEnvironment,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    result: SendResult,
    planned_delay: float,
    remaining: float,
    retry_after_max: float,
    retry_for: timedelta,
    now: datetime,
    portal_url: str,
) -> Decision:
    delivery = await load_delivery(session, delivery_id)
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    assert endpoint is not None  # deliveries reference their endpoint; endpoints are never removed
    if delivery.status != DeliveryStatus.pending:  # recorded already by an earlier run of this very attempt
        return Decision(DeliveryStatus(delivery.status), error=delivery.last_error)
    first_attempt_at = delivery.first_attempt_at or now
    values: dict[str, object] = {
        "attempts": max(delivery.attempts, attempt),
        "last_status_code": result.status_code,
        "last_error": result.error,
        "last_attempt_at": now,
        "first_attempt_at": first_attempt_at,
        "next_attempt_at": None,
    }
    pending = (WebhookDelivery.id == delivery.id, WebhookDelivery.status == DeliveryStatus.pending)
    if result.outcome == Outcome.delivered:
        await session.execute(
            update(WebhookDelivery)
            .where(*pending, WebhookDelivery.delivered_at.is_(None))
            .values(**values, status=DeliveryStatus.delivered, delivered_at=now)
        )
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id).values(failing_since=None)
        )
        return Decision(DeliveryStatus.delivered)
    failing_since = endpoint.failing_since or now
    if endpoint.failing_since is None:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
        )
    decision, disable = _decide(result, planned_delay, remaining, retry_after_max)
    out_of_time = decision.status == DeliveryStatus.failed and result.outcome == Outcome.retry
    if out_of_time and not disable and failing_since <= first_attempt_at:
        # The endpoint failed throughout this delivery's retry period, never once succeeding.
        disable = f"failing without a success for {retry_for}"
    if decision.status == DeliveryStatus.pending and failing_since <= now - retry_for:
        disable = f"failing without a success since {failing_since.isoformat()}"
        decision = Decision(DeliveryStatus.failed, error=f"{result.error}; the endpoint was disabled")
    values["last_error"] = decision.error or result.error
    if decision.status == DeliveryStatus.pending:
        values["next_attempt_at"] = now + timedelta(seconds=decision.next_delay_seconds)
    await session.execute(update(WebhookDelivery).where(*pending).values(**values, status=decision.status))
    if disable:
        await disable_endpoint(session, templates, endpoint, disable, now, portal_url)
    return decision


def _decide(result: SendResult, planned: float, remaining: float, retry_after_max: float) -> tuple[Decision, str]:
    if result.outcome == Outcome.gone:
        return Decision(DeliveryStatus.failed, error="HTTP 410: the receiver is gone"), "the receiver answered 410 Gone"
    if result.outcome == Outcome.rejected:
        return Decision(DeliveryStatus.failed, error=f"{result.error}: refused by the receiver, not retried"), ""
    delay = next_delay(planned, result.retry_after_seconds, retry_after_max)
    if delay > remaining:
        return Decision(DeliveryStatus.failed, error=f"{result.error}; out of retry time"), ""
    return Decision(DeliveryStatus.pending, next_delay_seconds=delay), ""


async def disable_endpoint(
    session: AsyncSession,
    templates: SandboxedEnvironment,
    endpoint: WebhookEndpoint,
    reason: str,
    now: datetime,
    portal_url: str,
) -> bool:
    """Disable once (a conditional update) and tell the endpoint's administrators; False if it was not enabled."""
    changed = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.status == EndpointStatus.enabled)
        .values(status=EndpointStatus.disabled, disabled_at=now, disabled_reason=reason[:500])
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    recipients = await _administrators(session, endpoint.organization_id)
    variables = {
        "endpoint": {
            "id": str(endpoint.id),
            "url": endpoint.url,
            "description": endpoint.description,
            "organization_id": str(endpoint.organization_id),
        },
        "reason": reason,
        "portal_url": portal_url,
    }
    found = (split_translated(name) for name in templates.list_templates())
    available = [locale for locale, base in found if locale is not None and base == DISABLED_TEMPLATE]
    for locale, group in (await by_language(session, endpoint.organization_id, recipients, available)).items():
        # Each admin reads it in their language; the English row keeps the plain key.
        name = translated_name(locale, DISABLED_TEMPLATE) if locale is not None else DISABLED_TEMPLATE
        subject, body = render(templates, name, variables)
        suffix = f":{locale}" if locale is not None else ""
        await write_event(
            session,
            key=f"webhook-endpoint-{endpoint.id}:disabled:{now.isoformat()}{suffix}",
            kind=EventKind.notification,
            name=DISABLED_TEMPLATE,
            organization_id=endpoint.organization_id,
            order_id=None,
            recipients=group,
            subject=subject,
            body=body,
            payload={"locale": locale or DEFAULT_LOCALE},
        )
    return True


async def _administrators(session: AsyncSession, organization_id: uuid.UUID) -> list[str]:
    """E-mail addresses of the admins of the organization, else of its nearest ancestor that has some."""
    for org in await path_ids(session, organization_id):
        emails = (
            await session.scalars(
                select(User.email)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.organization_id == org, Membership.role == Role.admin)
                .order_by(User.email)
            )
        ).all()
        if emails:
            return list(emails)
    return []
