"""Payloads of the license order workflow, its updates, query and activities (one pydantic model each).

Kept apart from the workflow class so that the API and the activities import them without the workflow code.
Ticket codes never appear here: workflows carry ids only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tessera.processes import ApproverSet, ConditionContext, ResolvedProcess
from tessera.processes.steps import AllocateTo, VisibleTo


class OrderPhase(StrEnum):
    """Order status as the SPEC names it, plus `accepted` (stored, workflow not yet past its first step)."""

    accepted = "accepted"
    pending_approval = "pending_approval"
    approved = "approved"
    fulfilled = "fulfilled"
    rejected = "rejected"
    failed = "failed"


class OrderWorkflowInput(BaseModel):
    """Everything the workflow needs, frozen when the order is accepted: the resolved steps travel with it."""

    order_id: str
    summary: str = Field(description="In words, for operators: quantity, product, customer and requester.")
    process: ResolvedProcess
    facts: ConditionContext
    organization_id: str
    reseller_id: str | None = None
    product_code: str


class TrailEntry(BaseModel):
    step: str
    kind: str
    outcome: str = Field(description="started, done, skipped, approved, rejected, timed_out, escalated, failed")
    at: datetime
    detail: str = ""


class OrderState(BaseModel):
    """What the `state` query returns and what the database mirrors."""

    status: OrderPhase
    trail: list[TrailEntry] = Field(default_factory=list)
    version: str = ""
    waiting_for_approval: bool = False


class ApprovalDecision(BaseModel):
    """Sent by the API as a workflow update; `user_id` is the authenticated caller."""

    user_id: str
    comment: str = Field(default="", max_length=2000)


class DecisionResult(BaseModel):
    status: OrderPhase


# --- activities --------------------------------------------------------------------------------------------


class OrderRef(BaseModel):
    order_id: str


class ApproversInput(BaseModel):
    order_id: str
    approvers: ApproverSet | list[str]


class ApproversResult(BaseModel):
    user_ids: list[str]
    emails: list[str]


class CreatedLicenses(BaseModel):
    license_ids: list[str]
    ticket_ids: list[str]


class AllocateInput(BaseModel):
    action: Literal["allocate"] = "allocate"
    order_id: str
    to: AllocateTo


class VisibilityInput(BaseModel):
    action: Literal["visibility"] = "visibility"
    order_id: str
    visible_to: VisibleTo


class NotifyInput(BaseModel):
    """`key` makes the outbox write idempotent: the same step of the same run never writes twice."""

    action: Literal["notify"] = "notify"
    order_id: str
    key: str
    template: str
    to: list[str]
    approval_step: str | None = None
    approval_deadline: datetime | None = None
    escalated: bool = False


class PublishInput(BaseModel):
    action: Literal["publish"] = "publish"
    order_id: str
    key: str
    event: str


Action = Annotated[AllocateInput | VisibilityInput | NotifyInput | PublishInput, Field(discriminator="action")]


class ApplyInput(BaseModel):
    """Consecutive database steps of one order, and optionally its new state, written in one transaction."""

    order_id: str
    actions: list[Action] = Field(default_factory=list)
    state: OrderState | None = None
