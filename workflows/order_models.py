"""Payloads of the license order workflow, its updates, query and activities (one pydantic model each).

Kept apart from the workflow class so that the API and the activities import them without the workflow code.
Ticket codes never appear here: workflows carry ids only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tessera.email.locales import split_translated
from tessera.orders.status import OrderStatus
from tessera.processes import ApproverSet, ConditionContext, ResolvedProcess
from tessera.processes.steps import AllocateTo, VisibleTo


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
    outcome: str = Field(
        description="started, done, skipped, approved, rejected, timed_out, escalated, failed, withdrawn"
    )
    at: datetime
    detail: str = ""
    comment: str = Field(default="", description="What the approver wrote with their decision.")


class OrderState(BaseModel):
    """What the `state` query returns and what the database mirrors."""

    status: OrderStatus
    trail: list[TrailEntry] = Field(default_factory=list)
    version: str = ""
    waiting_for_approval: bool = False


class ApprovalDecision(BaseModel):
    """Sent by the API as a workflow update; `user_id` is the authenticated caller."""

    user_id: str
    comment: str = Field(default="", max_length=2000)


class DecisionResult(BaseModel):
    status: OrderStatus


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
    """How many licenses (each with its ticket) the order has; ids are read from the database, not history.

    Older runs returned every id; a 10,000-license order would not fit a history event that way.
    """

    license_ids: list[str] = Field(default_factory=list)
    ticket_ids: list[str] = Field(default_factory=list)
    count: int = 0

    @property
    def created(self) -> int:
        return self.count or len(self.license_ids)


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
    source: str | None = Field(
        default=None, description="The template's text as the order started with it (None: read the file)."
    )
    translations: dict[str, str] = Field(
        default_factory=dict, description="The template's translations as the order started with them, by locale."
    )
    to: list[str]
    approval_step: str | None = None
    approval_deadline: datetime | None = None
    escalated: bool = False


def translated_sources(templates: dict[str, str], name: str) -> dict[str, str]:
    """The translations of template `name` among a run's template texts (`de/<name>` -> {"de": text})."""
    found = {split_translated(key): text for key, text in templates.items()}
    return {locale: text for (locale, base), text in found.items() if locale is not None and base == name}


class PublishInput(BaseModel):
    action: Literal["publish"] = "publish"
    order_id: str
    key: str
    event: str


Action = Annotated[AllocateInput | VisibilityInput | NotifyInput | PublishInput, Field(discriminator="action")]


class FailInput(BaseModel):
    """A failed order's last write: revoke what it created, give its quota back, publish only its failure."""

    order_id: str
    reason: str
    state: OrderState


class ApplyInput(BaseModel):
    """Consecutive database steps of one order, and optionally its new state, written in one transaction."""

    order_id: str
    actions: list[Action] = Field(default_factory=list)
    state: OrderState | None = None
