"""Subscription bodies: the contract with its current term, its term history, cancellations and events.

Money is a decimal string; dates are local days in the subscription's time zone, instants UTC.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from tessera.models import CancellationStatus, ManagedBy, SubscriptionStatus, TermKind
from tessera.orders.schema import MAX_QUANTITY, IsoDate
from tessera.schema_base import StrictModel

Money = Annotated[str, Field(description='A decimal string, e.g. "990.00".', examples=["990.00"])]
Reason = Annotated[str, Field(max_length=2000, description="Why, in words; kept with the request.")]


class CurrentTerm(StrictModel):
    """The term in force (for an ERP-managed subscription: the latest the ERP granted)."""

    number: int
    first_day: date
    valid_through: date = Field(description="The last day, inclusive, in the subscription's time zone.")
    starts_at: datetime | None
    ends_at: datetime = Field(description="Local midnight after the last day, in UTC (exclusive).")
    last_day_to_cancel: date | None = Field(description="A cancellation received by its end stops the next renewal.")
    cancel_deadline_at: datetime | None = Field(description="Local midnight after the last day to cancel, in UTC.")
    price: Money | None = Field(description="Per license, for this term.")


class TermRead(StrictModel):
    term_no: int
    kind: TermKind
    first_day: date
    valid_through: date
    starts_at: datetime
    ends_at: datetime
    last_day_to_cancel: date | None
    cancel_deadline_at: datetime | None
    quantity: int
    unit_price: Money | None
    currency: str | None
    amount: Money | None
    committed_at: datetime | None = Field(description="When its renewal became binding.")
    renewed_at: datetime | None = Field(description="When it began as a renewal.")
    external_ref: str | None


class CancellationRead(StrictModel):
    n: int = Field(description="The n-th cancellation of this subscription (its workflow id ends in it).")
    status: CancellationStatus
    received_at: datetime = Field(description="When the API received it: what the notice deadline is compared with.")
    effective_term_no: int
    effective_end_at: datetime = Field(description="When the subscription ends unless the cancellation is withdrawn.")
    reason: str | None
    workflow_id: str
    requested_by_user_id: uuid.UUID | None
    decided_at: datetime | None


class EventRead(StrictModel):
    at: datetime
    action: str
    term_no: int | None
    detail: dict[str, Any]
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None


class SubscriptionRead(StrictModel):
    id: uuid.UUID
    status: SubscriptionStatus
    order_id: uuid.UUID
    organization_id: uuid.UUID
    reseller_id: uuid.UUID | None
    product: str
    managed_by: ManagedBy
    quantity: int
    next_quantity: int | None = Field(description="Seats from the next renewal on, when a change was asked for.")
    unit_price: Money | None = Field(description="Per license and term, as ordered.")
    currency: str | None
    timezone: str
    start_date: date | None = Field(description="First day of term 1; empty while it waits for its first activation.")
    imported_terms: int = Field(description="Terms taken over from another system.")
    current_term: CurrentTerm | None = Field(description="Empty while pending.")
    effective_end_at: datetime | None = Field(description="When a cancelled subscription ends.")
    revoked_at: datetime | None
    ended_at: datetime | None
    workflow_id: str | None = Field(description="subscription-<id>; none for an ERP-managed subscription.")
    created_at: datetime
    updated_at: datetime


class SubscriptionDetail(SubscriptionRead):
    terms: list[TermRead] = Field(description="Every term so far, the committed next one included.")
    cancellations: list[CancellationRead]
    events: list[EventRead] = Field(description="What happened to it, oldest first.")


class SubscriptionUpdate(StrictModel):
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True, description="Seats from the next renewal on.")


class CancelCreate(StrictModel):
    reason: Reason | None = None


class CancelRead(StrictModel):
    """A cancellation as received; `effective_end_at` says when the subscription ends."""

    subscription: SubscriptionRead
    cancellation: CancellationRead
    effective_end_at: datetime
    message: str = Field(description="The effective end in words.")


class UncancelRead(StrictModel):
    subscription: SubscriptionRead
    cancellation: CancellationRead = Field(description="The cancellation withdrawn.")
    workflow_notified: bool = Field(
        description="Whether the subscription's workflow was told at once; it reads the change at its next step anyway."
    )


class RevokeCreate(StrictModel):
    reason: Reason | None = None


class RevocationRead(StrictModel):
    workflow_id: str = Field(description="revocation-<id>")
    status: Literal["revocation_started"]


class ErpTermCreate(StrictModel):
    valid_through: IsoDate = Field(description="The last day the subscription runs (inclusive, local).")
    external_ref: str = Field(min_length=1, max_length=200, description="The ERP's reference of this change.")


class StepDecisionCreate(StrictModel):
    comment: str = Field(default="", max_length=2000)


class StepDecisionRead(StrictModel):
    workflow_id: str
    status: str = Field(description="The process's status after the decision.")
