"""Which endpoints an event goes to, the delivery rows that record it, and the outbox relay's bookkeeping.

A delivery row exists before its workflow is started and is unique per (event, endpoint, round), so relays
racing over the same event, or a relay repeating itself after a crash, find the one row and start the one
workflow whose id it names. Round 0 is the relay's; each redelivery adds the next round.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, FieldIssue, InvalidInput, NotFound
from tessera.models import Event, EventKind, utcnow
from tessera.orders.events import event_filter
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach
from tessera.webhooks.endpoints import endpoint_filter, get_endpoint
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tessera.webhooks.status import EndpointStatus

LIST_SCOPE = "webhook-deliveries"
_ROUND_RACES = 5


@dataclass(frozen=True)
class DeliveryStart:
    """What starting a delivery's workflow needs."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    workflow_id: str
    round: int


def delivery_workflow_id(event_id: uuid.UUID, endpoint_id: uuid.UUID, round_: int) -> str:
    base = f"delivery-{event_id}-{endpoint_id}"
    return base if round_ == 0 else f"{base}-r{round_}"


def _start(delivery: WebhookDelivery, organization_id: uuid.UUID) -> DeliveryStart:
    return DeliveryStart(
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        endpoint_id=delivery.endpoint_id,
        organization_id=organization_id,
        workflow_id=delivery.workflow_id,
        round=delivery.round,
    )


async def matching_endpoints(session: AsyncSession, event: Event) -> list[WebhookEndpoint]:
    """Enabled endpoints of the event's organization or above that subscribe to its type."""
    if event.organization_id is None or event.kind != EventKind.webhook:
        return []
    path = await reach.path_ids(session, event.organization_id)
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.organization_id.in_(path),
            WebhookEndpoint.status == EndpointStatus.enabled,
            WebhookEndpoint.deleted_at.is_(None),
        )
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    # Event types are a short JSON list: filtered here, the same on both databases.
    return [endpoint for endpoint in rows.all() if event.name in endpoint.event_types]


async def ensure_delivery(
    session: AsyncSession, event: Event, endpoint_id: uuid.UUID, round_: int
) -> tuple[WebhookDelivery, bool]:
    """The delivery row of (event, endpoint, round) and whether this call made it; a racing twin finds the winner's."""
    key = (WebhookDelivery.event_id == event.id, WebhookDelivery.endpoint_id == endpoint_id)
    existing = await session.scalar(select(WebhookDelivery).where(*key, WebhookDelivery.round == round_))
    if existing is not None:
        return existing, False
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        event_id=event.id,
        endpoint_id=endpoint_id,
        round=round_,
        workflow_id=delivery_workflow_id(event.id, endpoint_id, round_),
    )
    try:
        async with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        found = await session.scalar(select(WebhookDelivery).where(*key, WebhookDelivery.round == round_))
        if found is None:
            raise
        return found, False
    return delivery, True


async def prepare_dispatch(session: AsyncSession, event_id: uuid.UUID) -> list[DeliveryStart]:
    """Round-0 deliveries of a webhook event, one per matching endpoint (idempotent)."""
    event = await session.get(Event, event_id)
    if event is None or event.organization_id is None:
        return []
    organization_id = event.organization_id
    return [
        _start((await ensure_delivery(session, event, endpoint.id, 0))[0], organization_id)
        for endpoint in await matching_endpoints(session, event)
    ]


async def undispatched_events(session: AsyncSession, kinds: Sequence[str], limit: int) -> list[tuple[uuid.UUID, str]]:
    """(id, kind) of the oldest events of these kinds not yet handed on."""
    if not kinds:
        return []
    rows = await session.execute(
        select(Event.id, Event.kind)
        .where(Event.dispatched_at.is_(None), Event.kind.in_(list(kinds)))
        .order_by(Event.created_at, Event.id)
        .limit(limit)
    )
    return [(row[0], str(row[1])) for row in rows.all()]


async def mark_dispatched(session: AsyncSession, event_id: uuid.UUID) -> None:
    await session.execute(
        update(Event).where(Event.id == event_id, Event.dispatched_at.is_(None)).values(dispatched_at=utcnow())
    )


async def prepare_redelivery(
    session: AsyncSession, principal: Principal, event_id: uuid.UUID, endpoint_id: uuid.UUID | None
) -> list[DeliveryStart]:
    """A new round per endpoint the event goes to and the caller administers (or just `endpoint_id`)."""
    event = await session.scalar(select(Event).where(Event.id == event_id, event_filter(principal)))
    if event is None or event.organization_id is None:
        raise NotFound(f"no event {event_id}")
    if event.kind != EventKind.webhook:
        raise Conflict(f"event {event_id} is a {event.kind}, not a webhook event; only those are delivered")
    matching = await matching_endpoints(session, event)
    if endpoint_id is not None:
        try:
            endpoint = await get_endpoint(session, principal, endpoint_id)
        except NotFound:
            raise InvalidInput(
                "no such webhook endpoint", issues=[FieldIssue("endpoint_id", "no such webhook endpoint")]
            ) from None
        if endpoint.id not in {candidate.id for candidate in matching}:
            reason = (
                "is disabled; enable it first"
                if endpoint.status != EndpointStatus.enabled
                else f"does not receive {event.name} events of this organization"
            )
            raise InvalidInput(f"the endpoint {reason}", issues=[FieldIssue("endpoint_id", f"the endpoint {reason}")])
        targets = [endpoint]
    else:
        reachable = set((await session.scalars(select(WebhookEndpoint.id).where(endpoint_filter(principal)))).all())
        targets = [endpoint for endpoint in matching if endpoint.id in reachable]
    starts = []
    for endpoint in targets:
        starts.append(_start(await _next_round(session, event, endpoint.id), event.organization_id))
    return starts


async def _next_round(session: AsyncSession, event: Event, endpoint_id: uuid.UUID) -> WebhookDelivery:
    for _ in range(_ROUND_RACES):
        last = await session.scalar(
            select(func.max(WebhookDelivery.round)).where(
                WebhookDelivery.event_id == event.id, WebhookDelivery.endpoint_id == endpoint_id
            )
        )
        delivery, made = await ensure_delivery(session, event, endpoint_id, (last or 0) + 1)
        if made:
            return delivery
        # A concurrent redelivery took this round: take the next one.
    raise Conflict("redeliveries of this event to this endpoint are racing; try again")


async def list_deliveries(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, *, limit: int, cursor: str | None
) -> PageOf[WebhookDelivery]:
    """An endpoint's deliveries, newest first."""
    await get_endpoint(session, principal, endpoint_id)
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .where(newest_first_after(cursor, WebhookDelivery.created_at, WebhookDelivery.id, LIST_SCOPE))
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    )
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda delivery: (delivery.created_at, delivery.id), scope=LIST_SCOPE)


async def load_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery
