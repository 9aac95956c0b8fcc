"""Payloads of the subscription, cancellation and revocation workflows and their activities.

Kept apart from the workflow classes so that the API and the activities import them without workflow code.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tessera.processes import ConditionContext, ResolvedProcess


class TermInfo(BaseModel):
    """One term as the workflow uses it: computed once by an activity, never recomputed on replay."""

    number: int
    first_day: date
    valid_through: date
    starts_at: datetime
    ends_at: datetime
    last_day_to_cancel: date
    cancel_deadline_at: datetime
    price: Decimal | None = None
    currency: str | None = None


class SubscriptionWorkflowInput(BaseModel):
    """One run is one term; `term_no` 0 means the first run, which reads where the subscription stands."""

    subscription_id: str
    term_no: int = 0
    summary: str = Field(description="In words, for operators: quantity, product and customer; no personal data.")
    organization_id: str
    reseller_id: str | None = None
    product_code: str
    product_group: str
    begun: BeginResult | None = Field(
        default=None,
        description="What the previous run's renewal read for this term; the run then reads nothing at its start.",
    )


class SubscriptionSnapshot(BaseModel):
    status: str
    term: TermInfo | None = None
    cancellation_term_no: int | None = None
    cancellation_applied: bool = False
    committed: bool = False
    quantity: int = 1
    first_activated_at: datetime | None = Field(
        default=None, description="While pending: the recorded first activation, which the run anchors at at once."
    )


class SubscriptionState(SubscriptionSnapshot):
    """What the subscription workflow's `state` query returns: the snapshot plus what this run has done."""

    version: str = ""
    trail: list[dict[str, str]] = Field(default_factory=list)


class TermRef(BaseModel):
    subscription_id: str
    term_no: int = 0
    at: datetime | None = Field(default=None, description="The workflow's clock: when the step happens.")


class ActivatedSignal(BaseModel):
    """The first activation of one of the subscription's licenses (sent by the activation service)."""

    activated_at: datetime


class ProcessInput(BaseModel):
    """Resolve a process's steps for this subscription as workflows.yaml says now."""

    subscription_id: str
    process: Literal["subscription", "cancellation", "revocation"]
    license_id: str | None = None


class ProcessResult(BaseModel):
    process: ResolvedProcess
    facts: ConditionContext


class StepInput(BaseModel):
    """A notify or webhook step of a subscription process; `key` makes its outbox row unique."""

    subscription_id: str = Field(description="Empty for a license that belongs to no subscription.")
    order_id: str
    key: str
    kind: Literal["notify", "webhook"]
    template: str | None = None
    source: str | None = None
    translations: dict[str, str] = Field(default_factory=dict, description="The template's translations by locale.")
    to: list[str] = Field(default_factory=list)
    event: str | None = None
    requester_user_id: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)


class TermEndResult(BaseModel):
    outcome: Literal["renew", "expire", "undecided", "ended"]


class RenewResult(BaseModel):
    term: TermInfo | None = None


class CancellationWorkflowInput(BaseModel):
    subscription_id: str
    cancellation_id: str
    order_id: str
    n: int
    summary: str
    process: ResolvedProcess
    facts: ConditionContext
    requester_user_id: str | None = None


class CancellationRef(BaseModel):
    cancellation_id: str
    at: datetime | None = None


class RevocationWorkflowInput(BaseModel):
    """Revoke a subscription (with all its licenses) or one license that belongs to none."""

    target: Literal["subscription", "license"]
    target_id: str
    subscription_id: str | None = None
    order_id: str
    summary: str
    process: ResolvedProcess
    facts: ConditionContext
    requester_user_id: str | None = None
    reason: str = ""


class RevokeInput(BaseModel):
    target: Literal["subscription", "license"]
    target_id: str
    reason: str = ""
    requester_user_id: str | None = None
    at: datetime | None = None


class StepDecision(BaseModel):
    """An approval or rejection of a cancellation or revocation step, sent as an update by the API."""

    user_id: str
    comment: str = Field(default="", max_length=2000)


class StepDecisionResult(BaseModel):
    status: str


class ProcessState(BaseModel):
    """What a cancellation's or revocation's `state` query returns."""

    status: str = "running"
    waiting_for_approval: bool = False
    trail: list[dict[str, str]] = Field(default_factory=list)


class RenewAction(BaseModel):
    """The `renew` step inside a term-end batch."""

    kind: Literal["renew"] = "renew"
    label: str = "renew"


TermEndAction = Annotated[RenewAction | StepInput, Field(discriminator="kind")]


class TermEndInput(BaseModel):
    """Everything the end of a term writes, in one transaction: the decision, the renewal and its outbox steps."""

    subscription_id: str
    term_no: int
    at: datetime
    actions: list[TermEndAction] = Field(default_factory=list)
    begin_next: bool = Field(default=False, description="A renewal also reads what the next term's run begins with.")


class TermEndOutcome(BaseModel):
    outcome: Literal["renewed", "expired", "undecided", "ended"]
    term: TermInfo | None = None
    snapshot: SubscriptionSnapshot | None = None
    begun: BeginResult | None = None


class BeginResult(BaseModel):
    """Where the subscription stands and the steps of this term, read together when a run begins."""

    snapshot: SubscriptionSnapshot
    resolved: ProcessResult
