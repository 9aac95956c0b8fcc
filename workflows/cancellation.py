"""CancellationWorkflow: the configured steps of one cancellation (e.g. an approval), then its `cancel` step.

The effective end was fixed by the API when the request arrived; this workflow only decides whether the
cancellation holds. Either way it tells the subscription's workflow to read the subscription again.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from tessera.processes import Step
from workflows.step_walker import LOCAL_TIMEOUT, RETRY, StepWalker
from workflows.subscription_models import CancellationRef, CancellationWorkflowInput, ProcessState

SUBSCRIPTION_CHANGED = "changed"


@workflow.defn(name="CancellationWorkflow")
class CancellationWorkflow(StepWalker):
    """One cancellation of a subscription: approval if configured, cancel, notify, webhook."""

    def __init__(self) -> None:
        super().__init__()
        self._input: CancellationWorkflowInput | None = None

    @workflow.run
    async def run(self, request: CancellationWorkflowInput) -> ProcessState:
        self._input = request
        self._order_id = request.order_id
        self._requester = request.requester_user_id
        key = f"cancellation-{request.subscription_id}-{request.n}"
        approved = await self.walk(request.process, request.facts, request.subscription_id, key)
        if not approved:
            await self._set("subscriptions.reject_cancellation")
        self._state.status = "done" if approved else "rejected"
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def core_step(self, step: Step) -> str:  # noqa: ARG002 (one core step per process)
        status = await self._set("subscriptions.apply_cancellation")
        return f"cancellation {status}"

    def template_variables(self) -> dict[str, str]:
        return {"effective_end": self._effective_end}

    _effective_end = ""

    async def _set(self, activity_name: str) -> str:
        assert self._input is not None
        status: str = await workflow.execute_local_activity(
            activity_name,
            CancellationRef(cancellation_id=self._input.cancellation_id, at=workflow.now()),
            result_type=str,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=RETRY,
        )
        await poke_subscription(self._input.subscription_id)
        return status


async def poke_subscription(subscription_id: str) -> None:
    """Tell a subscription's workflow to read its subscription again; one that has ended needs no telling."""
    handle = workflow.get_external_workflow_handle(f"subscription-{subscription_id}")
    with contextlib.suppress(ApplicationError):
        await handle.signal(SUBSCRIPTION_CHANGED)
