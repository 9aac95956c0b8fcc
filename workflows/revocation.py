"""RevocationWorkflow: the configured steps of one revocation (e.g. an approval), then its `revoke` step.

A subscription is revoked with every license it covers; a license outside any subscription alone. After the
revoke step the licenses and tickets are revoked in the database, so the next refresh of a certificate says so,
and the subscription's workflow is told to stop.
"""

from __future__ import annotations

from temporalio import workflow

from tessera.processes import Step
from workflows.cancellation import poke_subscription
from workflows.step_walker import LOCAL_TIMEOUT, RETRY, StepWalker
from workflows.subscription_models import ProcessState, RevocationWorkflowInput, RevokeInput


@workflow.defn(name="RevocationWorkflow")
class RevocationWorkflow(StepWalker):
    """One revocation of a license or a subscription: approval if configured, revoke, notify, webhook."""

    def __init__(self) -> None:
        super().__init__()
        self._input: RevocationWorkflowInput | None = None

    @workflow.run
    async def run(self, request: RevocationWorkflowInput) -> ProcessState:
        self._input = request
        self._order_id = request.order_id
        self._requester = request.requester_user_id
        subscription = request.subscription_id or ""
        approved = await self.walk(request.process, request.facts, subscription, f"revocation-{request.target_id}")
        self._state.status = "done" if approved else "rejected"
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def core_step(self, step: Step) -> str:  # noqa: ARG002 (one core step per process)
        assert self._input is not None
        revoked: list[str] = await workflow.execute_local_activity(
            "revocations.revoke",
            RevokeInput(
                target=self._input.target,
                target_id=self._input.target_id,
                reason=self._input.reason,
                requester_user_id=self._input.requester_user_id,
                at=workflow.now(),
            ),
            result_type=list[str],
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=RETRY,
        )
        if self._input.subscription_id:
            await poke_subscription(self._input.subscription_id)
        return f"{len(revoked)} license(s) revoked"

    def template_variables(self) -> dict[str, str]:
        assert self._input is not None
        if self._input.target == "license":
            return {"license_id": self._input.target_id, "license_status": "revoked"}
        return {"license_id": "", "license_status": "revoked"}
