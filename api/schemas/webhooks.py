"""Webhook endpoint, delivery and event-type bodies; a signing secret appears only in the answer that makes it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema

from tessera.schema_base import StrictModel
from tessera.webhooks.event_types import known_event_types
from tessera.webhooks.status import DeliveryStatus, EndpointStatus

EventTypeName = Annotated[str, Field(max_length=120), WithJsonSchema({"type": "string", "enum": known_event_types()})]
EventTypes = Annotated[list[EventTypeName], Field(min_length=1, max_length=50)]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="https:// (plain http only to loopback, where the deployment allows it); no user name or password.",
    ),
]
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class WebhookEndpointCreate(StrictModel):
    organization_id: uuid.UUID = Field(description="Whose events it receives: this organization and those below it.")
    url: Url
    event_types: EventTypes = Field(description="The event types it receives (see GET /event-types).")
    description: str = Field(default="", max_length=500)


class WebhookEndpointUpdate(StrictModel):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=500)
    status: EndpointStatus | None = Field(
        default=None, description="`enabled` again after Tessera (or an administrator) disabled it."
    )


class WebhookEndpointRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None = Field(description="First failed attempt since the last success.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries are signed with the previous secret too."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(description="The signing secret (`whsec_...`): shown now and never again.")


class SecretRotation(StrictModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the old secret still signs (0: at once); default TESSERA_WEBHOOK_SECRET_OVERLAP.",
    )


class DeliveryRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    round: int = Field(description="0: the first delivery; 1, 2, ...: redeliveries.")
    workflow_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class RedeliveryCreate(StrictModel):
    endpoint_id: uuid.UUID | None = Field(
        default=None, description="Only to this endpoint; default: every endpoint the event goes to that you manage."
    )


class RedeliveryRead(StrictModel):
    event_id: uuid.UUID
    deliveries: list[DeliveryRead]


class EventTypeRead(StrictModel):
    type: str
    description: str
    json_schema: dict[str, Any] = Field(
        alias="schema", serialization_alias="schema", description="JSON Schema of the body."
    )

    model_config = ConfigDict(populate_by_name=True)


class EventTypeList(StrictModel):
    items: list[EventTypeRead]
