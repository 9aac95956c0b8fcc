"""Cancellations and revocations of subscriptions that wait at an approval step for the viewer's decision.

Their steps are not mirrored in the database, so their workflows are asked: the `state` query says whether an
approval waits and at which step (its trail), the start event holds the steps and the requester the workflow
runs with. The approvers are read as the workflow reads them when a decision arrives. Decisions go through the
API's own routes (`api/routes/subscription_decisions.py`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import AppState
from api.routes import subscription_decisions as decisions
from api.schemas.subscriptions import StepDecisionCreate
from tessera.licenses import fulfilment
from tessera.models import Cancellation, CancellationStatus, Product, Subscription
from tessera.principal import Principal
from tessera.processes import ResolvedProcess
from tessera.processes.steps import ApprovalStep
from tessera.subscriptions.reads import subscription_filter
from tessera.subscriptions.requests import revocation_workflow_id
from workflows.subscription_models import CancellationWorkflowInput, ProcessState, RevocationWorkflowInput

log = logging.getLogger(__name__)

TEMPORAL_TIMEOUT_SECONDS = 5
MAX_LISTED = 100
RUNNING_REVOCATIONS = 'WorkflowType = "RevocationWorkflow" AND ExecutionStatus = "Running"'
Kind = Literal["cancellation", "revocation"]
Payload = TypeVar("Payload", bound=BaseModel)


@dataclass(frozen=True)
class WaitingRequest:
    kind: Kind
    subscription: Subscription
    product_code: str
    requester_id: uuid.UUID | None
    step: str


async def started_input(client: Client, workflow_id: str, model: type[Payload]) -> Payload | None:
    """The input a workflow was started with (its first history event), or None when it cannot be read."""
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_SECONDS):
            async for event in client.get_workflow_handle(workflow_id).fetch_history_events(page_size=1):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = (await client.data_converter.decode(payloads, [model]))[0]
                return decoded if isinstance(decoded, model) else None
    except (RPCError, RuntimeError, TimeoutError, ValueError) as error:
        log.warning("approvals: the start of %s could not be read: %s", workflow_id, error)
    return None


async def _state(client: Client, workflow_id: str) -> ProcessState | None:
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_SECONDS):
            state: ProcessState = await client.get_workflow_handle(workflow_id).query("state", result_type=ProcessState)
            return state
    except (RPCError, WorkflowQueryFailedError, RuntimeError, TimeoutError) as error:
        log.info("approvals: %s did not answer its state query: %s", workflow_id, error)
    return None


def _waiting_step(state: ProcessState, process: ResolvedProcess) -> tuple[ApprovalStep, bool] | None:
    if not state.waiting_for_approval:
        return None
    last = next((entry for entry in reversed(state.trail) if entry.get("kind") == "approval"), None)
    if last is None or last.get("outcome") not in ("started", "escalated"):
        return None
    step = next((s for s in process.steps if isinstance(s, ApprovalStep) and s.label == last.get("step")), None)
    return (step, last.get("outcome") == "escalated") if step is not None else None


async def _may_decide(
    session: AsyncSession, principal: Principal, client: Client, workflow_id: str, kind: Kind
) -> tuple[str, uuid.UUID | None] | None:
    """(step label, requester) when the viewer is among the approvers of the step the workflow waits at."""
    state = await _state(client, workflow_id)
    if state is None or not state.waiting_for_approval:
        return None
    model: type[CancellationWorkflowInput] | type[RevocationWorkflowInput] = (
        CancellationWorkflowInput if kind == "cancellation" else RevocationWorkflowInput
    )
    started = await started_input(client, workflow_id, model)
    waiting = _waiting_step(state, started.process) if started is not None else None
    if started is None or waiting is None or principal.user_id is None:
        return None
    step, escalated = waiting
    requester = uuid.UUID(started.requester_user_id) if started.requester_user_id else None
    if requester == principal.user_id and not step.allow_self_approval:
        return None
    asked = step.escalate_to if escalated and step.escalate_to is not None else step.approvers
    approver_set = asked if isinstance(asked, list) else str(asked.value)
    users = await fulfilment.approvers(session, uuid.UUID(started.order_id), approver_set)
    if principal.user_id not in {user.id for user in users}:
        return None
    return step.label, requester


async def _running_revocations(client: Client) -> set[uuid.UUID]:
    """Subscription ids of the revocation workflows running now (one id per target, so at most one each)."""
    found: set[uuid.UUID] = set()
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_SECONDS):
            async for execution in client.list_workflows(RUNNING_REVOCATIONS, limit=MAX_LISTED * 5):
                try:
                    found.add(uuid.UUID(execution.id.removeprefix("revocation-")))
                except ValueError:
                    continue
    except (RPCError, RuntimeError, TimeoutError) as error:
        log.warning("approvals: running revocations could not be listed: %s", error)
    return found


async def waiting_requests(session: AsyncSession, state: AppState, principal: Principal) -> list[WaitingRequest]:
    """Cancellations and revocations of subscriptions within reach that wait for this viewer's decision."""
    if principal.user_id is None:
        return []
    candidates: list[tuple[Kind, Subscription, str, str]] = []
    rows = await session.execute(
        select(Cancellation.workflow_id, Subscription, Product.code)
        .join(Subscription, Subscription.id == Cancellation.subscription_id)
        .join(Product, Product.id == Subscription.product_id)
        .where(Cancellation.status == CancellationStatus.requested, subscription_filter(principal))
        .order_by(Cancellation.received_at)
        .limit(MAX_LISTED)
    )
    candidates += [("cancellation", row[1], row[2], row[0]) for row in rows.all()]
    revoking = await _running_revocations(state.temporal)
    if revoking:
        revoked = await session.execute(
            select(Subscription, Product.code)
            .join(Product, Product.id == Subscription.product_id)
            .where(Subscription.id.in_(revoking), subscription_filter(principal))
            .limit(MAX_LISTED)
        )
        candidates += [("revocation", row[0], row[1], revocation_workflow_id(row[0].id)) for row in revoked.all()]
    found = []
    for kind, subscription, code, workflow_id in candidates:
        decidable = await _may_decide(session, principal, state.temporal, workflow_id, kind)
        if decidable is not None:
            found.append(WaitingRequest(kind, subscription, code, decidable[1], decidable[0]))
    return found


async def decide(
    session: AsyncSession,
    state: AppState,
    principal: Principal,
    kind: Kind,
    subscription_id: uuid.UUID,
    comment: str,
    *,
    approve: bool,
) -> None:
    """The API's decision routes, called as the viewer: they check reach, and the workflow's validator the rest."""
    body = StepDecisionCreate(comment=comment)
    if kind == "cancellation":
        route = decisions.approve_cancellation if approve else decisions.reject_cancellation
    else:
        route = decisions.approve_subscription_revocation if approve else decisions.reject_subscription_revocation
    await route(subscription_id, session, state, principal, body)
