"""Payloads of the webhook delivery workflow and its activity (pure pydantic: passed through the sandbox)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tessera.webhooks.status import DeliveryStatus


class RetrySchedule(BaseModel):
    """The settings a delivery started with; a change of settings applies to deliveries started afterwards."""

    retry_for_seconds: float = Field(gt=0)
    base_seconds: float = Field(gt=0)
    max_interval_seconds: float = Field(gt=0)
    retry_after_max_seconds: float = Field(ge=0)


class DeliveryInput(BaseModel):
    delivery_id: str
    event_id: str
    endpoint_id: str
    organization_id: str
    """The event's organization: the workflow's TesseraCustomer."""
    schedule: RetrySchedule


class AttemptInput(BaseModel):
    delivery_id: str
    attempt: int = Field(ge=1)
    planned_delay_seconds: float = Field(ge=0)
    """The jittered wait before the next attempt, should this one fail in a way worth retrying."""
    remaining_seconds: float
    """Retry time left when this attempt starts (workflow time); a wait beyond it ends the delivery failed."""
    retry_after_max_seconds: float = Field(ge=0)


class AttemptResult(BaseModel):
    status: DeliveryStatus
    """pending: wait `next_delay_seconds` and try again; delivered or failed: done."""
    status_code: int | None = None
    error: str | None = None
    next_delay_seconds: float = 0.0


class DeliveryResult(BaseModel):
    status: DeliveryStatus
    attempts: int
    status_code: int | None = None
