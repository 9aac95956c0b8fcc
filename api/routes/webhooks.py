"""Webhook endpoints and deliveries: registered by administrators, signed, delivered by workflows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, status
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from api.deps import AppState, Cursor, Limit, Session, State, scoped
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.webhooks import (
    DeliveryRead,
    EventTypeList,
    EventTypeRead,
    RedeliveryCreate,
    RedeliveryRead,
    SecretRotation,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)
from tessera.orders.errors import WorkflowNotStarted
from tessera.principal import Principal
from tessera.settings import Settings
from tessera.webhooks import deliveries, endpoints
from tessera.webhooks.event_types import EVENT_TYPES
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tessera.webhooks.status import DeliveryStatus
from workflows.client_ops import RPC_TIMEOUT
from workflows.outbox_relay import retry_schedule, start_delivery

router = APIRouter(tags=["webhooks"])

WebhooksReader = Annotated[Principal, Depends(scoped("webhooks:read"))]
WebhooksWriter = Annotated[Principal, Depends(scoped("webhooks:write"))]


def url_rules(settings: Settings) -> endpoints.UrlRules:
    return endpoints.UrlRules(
        allow_http_loopback=settings.webhook_allow_http_loopback,
        allowed_networks=tuple(settings.webhook_allowed_networks),
    )


def _read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(endpoint, from_attributes=True)


async def redeliver(
    session: AsyncSession,
    state: AppState,
    caller: Principal,
    event_id: uuid.UUID,
    endpoint_id: uuid.UUID | None,
) -> list[WebhookDelivery]:
    """New delivery rounds of an event and their workflows (the API's and the portal's path)."""
    starts = await deliveries.prepare_redelivery(session, caller, event_id, endpoint_id)
    await session.commit()  # the rows exist before their workflows: never a lock held across a call to Temporal
    schedule = retry_schedule(state.settings)
    started: set[uuid.UUID] = set()
    try:
        for start in starts:
            await asyncio.wait_for(
                start_delivery(state.temporal, state.settings.task_queue, start, schedule),
                RPC_TIMEOUT.total_seconds() + 5,
            )
            started.add(start.delivery_id)
    except (RPCError, RuntimeError, TimeoutError) as error:
        # Rounds whose workflow never started would look pending for ever: they are recorded as failed.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([s.delivery_id for s in starts if s.delivery_id not in started]))
            .values(status=DeliveryStatus.failed, last_error="its workflow could not be started")
        )
        await session.commit()
        raise WorkflowNotStarted(
            f"the redelivery could not be started ({type(error).__name__}); repeat the request later"
        ) from error
    rows = await session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.id.in_([start.delivery_id for start in starts]))
    )
    return list(rows.all())


@router.get("/event-types", response_model=EventTypeList, response_model_by_alias=True)
async def list_event_types() -> EventTypeList:
    """List the event types webhooks can carry, each with the JSON Schema of its body; no key needed."""
    return EventTypeList(
        items=[
            EventTypeRead(type=name, description=event.description, json_schema=event.schema())
            for name, event in sorted(EVENT_TYPES.items())
        ]
    )


@router.get(
    "/webhook-endpoints",
    response_model=Page[WebhookEndpointRead],
)
async def list_webhook_endpoints(
    session: Session,
    caller: WebhooksReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    organization_id: Annotated[uuid.UUID | None, Query(description="Only this organization's endpoints.")] = None,
) -> Page[WebhookEndpointRead]:
    """List the endpoints of the organizations the caller administers, newest first; never their secrets."""
    page = await endpoints.list_endpoints(session, caller, limit=limit, cursor=cursor, organization_id=organization_id)
    return Page(items=[_read(endpoint) for endpoint in page.items], next_cursor=page.next_cursor)


@router.post("/webhook-endpoints", response_model=WebhookEndpointCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, session: Session, state: State, caller: WebhooksWriter
) -> WebhookEndpointCreated:
    """Register an endpoint for an administered organization's events; its signing secret is shown once."""
    endpoint, secret = await endpoints.create_endpoint(
        session,
        caller,
        state.secret_key,
        url_rules(state.settings),
        organization_id=body.organization_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
    )
    return WebhookEndpointCreated(**_read(endpoint).model_dump(), secret=secret)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead)
async def get_webhook_endpoint(endpoint_id: uuid.UUID, session: Session, caller: WebhooksReader) -> WebhookEndpointRead:
    """Show one endpoint (without its secret)."""
    return _read(await endpoints.get_endpoint(session, caller, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead)
async def update_webhook_endpoint(
    endpoint_id: uuid.UUID, body: WebhookEndpointUpdate, session: Session, state: State, caller: WebhooksWriter
) -> WebhookEndpointRead:
    """Change an endpoint's URL, event types, description, or enable or disable it."""
    endpoint = await endpoints.update_endpoint(
        session,
        caller,
        url_rules(state.settings),
        endpoint_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        status=body.status,
    )
    return _read(endpoint)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook_endpoint(endpoint_id: uuid.UUID, session: Session, caller: WebhooksWriter) -> None:
    """Delete an endpoint: no further attempts; its deliveries stay recorded."""
    await endpoints.delete_endpoint(session, caller, endpoint_id)


@router.post("/webhook-endpoints/{endpoint_id}/secret", response_model=WebhookEndpointCreated)
async def rotate_webhook_secret(
    endpoint_id: uuid.UUID,
    session: Session,
    state: State,
    caller: WebhooksWriter,
    body: Annotated[SecretRotation | None, Body()] = None,
) -> WebhookEndpointCreated:
    """Replace the signing secret (shown once); the old one keeps signing during the overlap period."""
    seconds = body.overlap_seconds if body is not None else None
    overlap = state.settings.webhook_secret_overlap if seconds is None else timedelta(seconds=seconds)
    endpoint, secret = await endpoints.rotate_secret(session, caller, state.secret_key, endpoint_id, overlap=overlap)
    return WebhookEndpointCreated(**_read(endpoint).model_dump(), secret=secret)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=Page[DeliveryRead])
async def list_webhook_deliveries(
    endpoint_id: uuid.UUID, session: Session, caller: WebhooksReader, limit: Limit = 50, cursor: Cursor = None
) -> Page[DeliveryRead]:
    """List an endpoint's deliveries, newest first: status, attempts, last response code and time."""
    page = await deliveries.list_deliveries(session, caller, endpoint_id, limit=limit, cursor=cursor)
    return Page(
        items=[DeliveryRead.model_validate(d, from_attributes=True) for d in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/events/{event_id}/redeliver",
    response_model=RedeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503, s409="The event is a notification, not a webhook event."),
)
async def redeliver_event(
    event_id: uuid.UUID,
    session: Session,
    state: State,
    caller: WebhooksWriter,
    body: Annotated[RedeliveryCreate | None, Body()] = None,
) -> RedeliveryRead:
    """Send a webhook event again: a new delivery workflow per endpoint (`delivery-{event}-{endpoint}-r{n}`)."""
    rows = await redeliver(session, state, caller, event_id, body.endpoint_id if body else None)
    return RedeliveryRead(
        event_id=event_id, deliveries=[DeliveryRead.model_validate(row, from_attributes=True) for row in rows]
    )
