"""Webhook endpoints and their deliveries (one row per event, endpoint and round of sending)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tessera.models import Base, TimestampMixin, new_id, utcnow
from tessera.webhooks.status import DeliveryStatus, EndpointStatus


class WebhookEndpoint(TimestampMixin, Base):
    """A URL an organization's administrators registered, and the event types it wants.

    The signing secret is stored only encrypted (bound to the endpoint id); after a rotation the previous secret
    still signs until `previous_secret_expires_at`, so receivers can switch without losing a delivery.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=EndpointStatus.enabled)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None] = mapped_column(
        comment="first failed attempt since the last success; too long ago disables the endpoint"
    )
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None]
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(comment="deleted endpoints keep their deliveries' history")


class WebhookDelivery(Base):
    """One event sent to one endpoint by one workflow run; `round` 0 is the relay's, 1, 2, ... redeliveries."""

    __tablename__ = "webhook_delivery"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id"), index=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoint.id"))
    round: Mapped[int] = mapped_column(Integer, default=0)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    first_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None] = mapped_column(comment="set once: a delivery is never recorded twice")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # The relay and redeliveries insert before they start a workflow: racing twins find the one row.
        UniqueConstraint("event_id", "endpoint_id", "round"),
        Index("ix_webhook_delivery_endpoint_created", "endpoint_id", "created_at", "id"),
    )
