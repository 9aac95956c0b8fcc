"""Order bodies: what a caller asks for, and the order as it stands (status, step trail, licenses, tickets)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from tessera.models import LicenseStatus, OrderStatus, TicketStatus, Visibility
from tessera.orders.schema import Allocation, OrderRequest
from tessera.schema_base import StrictModel


class OrderCreate(OrderRequest):
    """Licenses for one organization. Send it with an `Idempotency-Key` header."""


class OrderRead(StrictModel):
    """An order; `status` is `accepted` until its workflow decides (then pending_approval, approved, ...)."""

    id: uuid.UUID
    status: OrderStatus
    workflow_id: str = Field(description="The Temporal workflow id, e.g. order-<id>.")
    workflow_started: bool = Field(description="False while Temporal was unreachable: repeat the request.")
    organization_id: uuid.UUID
    product: str
    quantity: int
    fields: dict[str, Any]
    modules: list[str]
    allocation: Allocation
    user_id: uuid.UUID | None
    visibility: Visibility
    external_ref: str | None
    process_version: str | None = Field(description="sha256 of the workflows.yaml whose steps the order follows.")
    requested_by_user_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class TrailEntryRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    step: str
    kind: str
    outcome: str
    at: datetime
    detail: str = ""
    comment: str = Field(default="", description="What an approver wrote with their decision.")


class TicketSummary(StrictModel):
    """A ticket without its code: codes are shown only to those entitled, one at a time."""

    id: uuid.UUID
    status: TicketStatus
    organization_id: uuid.UUID
    allocated_user_id: uuid.UUID | None
    visibility: Visibility


class OrderLicense(StrictModel):
    id: uuid.UUID
    line_no: int
    status: LicenseStatus
    expires_at: datetime | None
    ticket: TicketSummary | None


class OrderDetail(OrderRead):
    trail: list[TrailEntryRead] = Field(description="The steps so far, as the workflow recorded them.")
    licenses: list[OrderLicense] = Field(description="Licenses created so far that the caller may see.")


class DecisionCreate(StrictModel):
    comment: str = Field(default="", max_length=2000)


class DecisionRead(StrictModel):
    order_id: uuid.UUID
    status: OrderStatus
