"""RecoveryWorkflow: a lost device's activation, freed after the configured steps (a lock period, an approval).

Until its `recover` step the activation is untouched: the device keeps refreshing as before, and a rejected
approval ends the recovery with nothing changed. The `recover` step frees the slot, so the ticket can be activated
on another device, and from then on the lost activation's refresh answers `revoked`.
"""

from __future__ import annotations

from temporalio import workflow

from tessera.processes import Step
from workflows import search_attributes as sa
from workflows.recovery_models import RECOVERED, RecoveryRef, RecoveryWorkflowInput
from workflows.step_walker import LOCAL_TIMEOUT, RETRY, StepWalker
from workflows.subscription_models import ProcessState


@workflow.defn(name="RecoveryWorkflow")
class RecoveryWorkflow(StepWalker):
    """One recovery of a lost device's activation: lock period and approvals as configured, recover, notify."""

    def __init__(self) -> None:
        super().__init__()
        self._input: RecoveryWorkflowInput | None = None

    @workflow.run
    async def run(self, request: RecoveryWorkflowInput) -> ProcessState:
        self._input = request
        self._order_id = request.order_id
        self._requester = request.requester_user_id
        approved = await self.walk(request.process, request.facts, "", f"recovery-{request.activation_id}")
        if not approved:
            await self._set("recovery.reject")
        self._state.status = "done" if approved else "rejected"
        workflow.upsert_search_attributes([sa.STATUS.value_set(RECOVERED if approved else "rejected")])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def core_step(self, step: Step) -> str:  # noqa: ARG002 (one core step per process)
        status = await self._set("recovery.recover")
        return f"activation {status}"

    def template_variables(self) -> dict[str, str]:
        assert self._input is not None
        return {"license_id": self._input.license_id, "license_status": RECOVERED}

    async def _set(self, activity_name: str) -> str:
        assert self._input is not None
        status: str = await workflow.execute_local_activity(
            activity_name,
            RecoveryRef(recovery_id=self._input.recovery_id, at=workflow.now()),
            result_type=str,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=RETRY,
        )
        return status
