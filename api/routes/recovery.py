"""Lost devices: recover an activation (after the configured lock period and approvals), and decide approvals."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.deps import Session, State, scoped
from api.openapi import problems
from api.routes.subscription_decisions import S409_DECIDE, Decision, decide
from api.routes.subscriptions import S503_START, run_workflow_call
from api.schemas.recovery import RecoveryRead
from api.schemas.subscriptions import StepDecisionRead
from tessera.activation import recovery
from tessera.activation.recovery_models import ActivationRecovery, RecoveryStatus
from tessera.principal import Principal
from tessera.subscriptions.refusals import NotWaitingForDecision
from workflows.recovery_ops import start_recovery_workflow

router = APIRouter(tags=["activations"])

ActivationsReader = Annotated[Principal, Depends(scoped("activations:read"))]
ActivationsWriter = Annotated[Principal, Depends(scoped("activations:write"))]


def _read(found: ActivationRecovery) -> RecoveryRead:
    return RecoveryRead.model_validate(found, from_attributes=True)


@router.post(
    "/activations/{activation_id}/recover",
    response_model=RecoveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(
        403, 409, 503, s409="The activation is not active, or its recovery already ended.", s503=S503_START
    ),
)
async def recover_activation(
    activation_id: uuid.UUID, session: Session, state: State, caller: ActivationsWriter
) -> RecoveryRead:
    """Recover a lost device's activation (its ticket's holder or an administrator): a repeat gets the same run."""
    requested = await recovery.request_recovery(session, caller, activation_id)
    answer = _read(requested.recovery)
    # Started on every request while pending: a request whose start failed (Temporal away) is repaired by a retry.
    await run_workflow_call(start_recovery_workflow(state.temporal, state.settings, session, requested.recovery.id))
    return answer


@router.get("/activations/{activation_id}/recovery", response_model=RecoveryRead)
async def get_activation_recovery(
    activation_id: uuid.UUID, session: Session, caller: ActivationsReader
) -> RecoveryRead:
    """Show the recovery of an activation the caller may see: pending, recovered, rejected or superseded."""
    return _read(await recovery.recovery_of(session, caller, activation_id))


async def _waiting(session: Session, caller: Principal, activation_id: uuid.UUID) -> str:
    found = await recovery.recovery_of(session, caller, activation_id)
    if found.status != RecoveryStatus.pending:
        raise NotWaitingForDecision("the activation's recovery is not waiting for a decision")
    return found.workflow_id


DECISION = problems(409, 503, s409=S409_DECIDE)


@router.post("/activations/{activation_id}/recover/approve", response_model=StepDecisionRead, responses=DECISION)
async def approve_recovery(
    activation_id: uuid.UUID, session: Session, state: State, caller: ActivationsWriter, body: Decision = None
) -> StepDecisionRead:
    """Approve the recovery waiting at an approval step (only its approvers)."""
    workflow_id = await _waiting(session, caller, activation_id)
    return await decide(session, state, caller, workflow_id, body, approve=True)


@router.post("/activations/{activation_id}/recover/reject", response_model=StepDecisionRead, responses=DECISION)
async def reject_recovery(
    activation_id: uuid.UUID, session: Session, state: State, caller: ActivationsWriter, body: Decision = None
) -> StepDecisionRead:
    """Reject the recovery waiting at an approval step: the activation stays as it is."""
    workflow_id = await _waiting(session, caller, activation_id)
    return await decide(session, state, caller, workflow_id, body, approve=False)
