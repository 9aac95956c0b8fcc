"""Decisions on the approval steps cancellations and revocations wait at, sent as workflow updates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Body
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import Session, State
from api.openapi import problems
from api.routes.subscriptions import SubscriptionsWriter
from api.schemas.subscriptions import StepDecisionCreate, StepDecisionRead
from tessera.errors import Forbidden
from tessera.models import CancellationStatus
from tessera.principal import Principal
from tessera.subscriptions import reads, requests
from tessera.subscriptions.refusals import NotWaitingForDecision
from workflows import subscription_ops
from workflows.client_ops import RPC_TIMEOUT
from workflows.subscription_models import ProcessState, StepDecision

router = APIRouter(tags=["subscriptions"])

S409_DECIDE = "Nothing waits for a decision."
QUERY_SECONDS = 2.0
"""How long a page waits to learn whether an approval waits: it shows the recorded status without it."""


Decision = Annotated[StepDecisionCreate | None, Body(description="An optional comment, kept in the trail.")]


async def decide(
    session: Session, state: State, caller: Principal, workflow_id: str, body: StepDecisionCreate | None, approve: bool
) -> StepDecisionRead:
    """Send a decision to the workflow (its validator says who may and when), holding no transaction."""
    if caller.user_id is None:
        raise Forbidden("a service account's key cannot approve or reject: decisions are made by people, use yours")
    await session.commit()
    decision = StepDecision(user_id=str(caller.user_id), comment=(body or StepDecisionCreate()).comment)
    result = await subscription_ops.decide_step(state.temporal, workflow_id, approve=approve, decision=decision)
    return StepDecisionRead(workflow_id=workflow_id, status=result.status)


async def waiting_for_approval(client: Client, workflow_id: str) -> bool | None:
    """Whether a cancellation's or revocation's workflow waits at an approval step; None when it cannot be asked."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        state: ProcessState = await asyncio.wait_for(
            handle.query("state", result_type=ProcessState, rpc_timeout=RPC_TIMEOUT), QUERY_SECONDS
        )
    except (RPCError, RuntimeError, TimeoutError, WorkflowQueryFailedError):
        return None
    return state.waiting_for_approval


async def cancellation_workflow(session: Session, caller: Principal, subscription_id: uuid.UUID) -> str:
    """The workflow id of the visible subscription's cancellation that may wait for a decision."""
    await reads.visible_subscription(session, caller, subscription_id)
    live = await requests.existing_cancellation(session, subscription_id)
    if live is None or live.status != CancellationStatus.requested:
        raise NotWaitingForDecision("the subscription has no cancellation waiting for a decision")
    return live.workflow_id


DECISION = problems(409, 503, s409=S409_DECIDE)


@router.post(
    "/subscriptions/{subscription_id}/cancellation/approve", response_model=StepDecisionRead, responses=DECISION
)
async def approve_cancellation(
    subscription_id: uuid.UUID, session: Session, state: State, caller: SubscriptionsWriter, body: Decision = None
) -> StepDecisionRead:
    """Approve the cancellation waiting at an approval step (only its approvers)."""
    workflow_id = await cancellation_workflow(session, caller, subscription_id)
    return await decide(session, state, caller, workflow_id, body, approve=True)


@router.post(
    "/subscriptions/{subscription_id}/cancellation/reject", response_model=StepDecisionRead, responses=DECISION
)
async def reject_cancellation(
    subscription_id: uuid.UUID, session: Session, state: State, caller: SubscriptionsWriter, body: Decision = None
) -> StepDecisionRead:
    """Reject the cancellation waiting at an approval step: the subscription renews as before."""
    workflow_id = await cancellation_workflow(session, caller, subscription_id)
    return await decide(session, state, caller, workflow_id, body, approve=False)


@router.post("/subscriptions/{subscription_id}/revocation/approve", response_model=StepDecisionRead, responses=DECISION)
async def approve_subscription_revocation(
    subscription_id: uuid.UUID, session: Session, state: State, caller: SubscriptionsWriter, body: Decision = None
) -> StepDecisionRead:
    """Approve the subscription's revocation waiting at an approval step."""
    await reads.visible_subscription(session, caller, subscription_id)
    return await decide(session, state, caller, requests.revocation_workflow_id(subscription_id), body, approve=True)


@router.post("/subscriptions/{subscription_id}/revocation/reject", response_model=StepDecisionRead, responses=DECISION)
async def reject_subscription_revocation(
    subscription_id: uuid.UUID, session: Session, state: State, caller: SubscriptionsWriter, body: Decision = None
) -> StepDecisionRead:
    """Reject the subscription's revocation waiting at an approval step: it stays as it is."""
    await reads.visible_subscription(session, caller, subscription_id)
    return await decide(session, state, caller, requests.revocation_workflow_id(subscription_id), body, approve=False)
