"""The step walk shared by the cancellation and revocation workflows: approvals as updates, notify, webhook, wait.

Each workflow supplies its core step (`cancel`, `revoke`). Approvals follow the order workflow's rules: the
approvers are resolved relative to the order's organization, re-read when a decision arrives (a demoted admin
cannot decide), the requester cannot decide unless the step allows it, and a timeout approves, rejects or
escalates as configured.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from tessera.processes import (
    ApprovalStep,
    ApproverSet,
    ConditionContext,
    ConditionError,
    NotifyStep,
    OnTimeout,
    ResolvedProcess,
    Step,
    WaitStep,
    WebhookStep,
    evaluate,
    to_timedelta,
)
from workflows.order_models import ApproversInput, ApproversResult, translated_sources
from workflows.subscription_models import ProcessState, StepDecision, StepDecisionResult, StepInput

LOCAL_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class StepWalker:
    """Base of workflows that walk a resolved step list around one core step."""

    def __init__(self) -> None:
        self._state = ProcessState()
        self._decision: tuple[bool, StepDecision] | None = None
        self._approval: ApprovalStep | None = None
        self._asked: ApproverSet | list[str] = []
        self._round = 0
        self._order_id = ""
        self._requester: str | None = None

    # --- the walk ----------------------------------------------------------------------------------------------

    async def walk(self, process: ResolvedProcess, facts: ConditionContext, subscription_id: str, key: str) -> bool:
        """Run every step; False when an approval rejected the request (the core step then never ran)."""
        for step in process.steps:
            if step.when and not _holds(step.when, facts):
                self._trail(step, "skipped", f"condition false: {step.when}")
                continue
            if isinstance(step, ApprovalStep):
                if not await self._approve(step):
                    return False
            elif isinstance(step, NotifyStep):
                await self._outbox(
                    StepInput(
                        subscription_id=subscription_id,
                        order_id=self._order_id,
                        key=f"{key}:{step.label}",
                        kind="notify",
                        template=step.template,
                        source=process.templates.get(step.template),
                        translations=translated_sources(process.templates, step.template),
                        to=step.to,
                        requester_user_id=self._requester,
                        variables=self.template_variables(),
                    )
                )
                self._trail(step, "done", ", ".join(step.to))
            elif isinstance(step, WebhookStep):
                await self._outbox(
                    StepInput(
                        subscription_id=subscription_id,
                        order_id=self._order_id,
                        key=f"{key}:{step.label}",
                        kind="webhook",
                        event=step.event,
                        variables=self.template_variables(),
                    )
                )
                self._trail(step, "done", step.event)
            elif isinstance(step, WaitStep):
                await workflow.sleep(to_timedelta(step.duration))
                self._trail(step, "done", step.duration)
            else:
                self._trail(step, "done", await self.core_step(step))
        return True

    async def core_step(self, step: Step) -> str:
        """Run the workflow's own step (cancel, revoke); returns the trail's detail."""
        raise NotImplementedError

    def template_variables(self) -> dict[str, str]:
        return {}

    async def _outbox(self, request: StepInput) -> None:
        await workflow.execute_local_activity(
            "subscriptions.step", request, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
        )

    # --- approvals -----------------------------------------------------------------------------------------------

    async def _approve(self, step: ApprovalStep) -> bool:
        approvers: ApproverSet | list[str] = step.approvers
        rounds = 2 if step.on_timeout == OnTimeout.escalate and step.escalate_to is not None else 1
        for round_no in range(rounds):
            if round_no == 1 and step.escalate_to is not None:
                approvers = step.escalate_to
            found = await self._approvers(approvers)
            self._approval, self._asked, self._round = step, approvers, self._round + 1
            self._decision = None
            self._state.waiting_for_approval = True
            self._state.status = "pending_approval"
            self._trail(step, "escalated" if round_no else "started", f"{len(found.user_ids)} approver(s)")
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._decision is not None, timeout=to_timedelta(step.timeout))
            self._state.waiting_for_approval = False
            self._approval = None
            self._state.status = "running"
            if self._decision is not None:
                approved, decision = self._decision
                outcome = "approved" if approved else "rejected"
                self._trail(step, outcome, f"by user {decision.user_id}", decision.comment)
                return approved
            self._trail(step, "timed_out", f"no decision within {step.timeout}")
            if step.on_timeout == OnTimeout.approve:
                return True
        return False

    async def _approvers(self, approvers: ApproverSet | list[str]) -> ApproversResult:
        result: ApproversResult = await workflow.execute_local_activity(
            "orders.approvers",
            ApproversInput(order_id=self._order_id, approvers=approvers),
            result_type=ApproversResult,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=RETRY,
        )
        return result

    @workflow.update(name="approve")
    async def approve(self, decision: StepDecision) -> StepDecisionResult:
        """Approve the request at its current approval step."""
        await self._decide(True, decision)
        return StepDecisionResult(status="approved")

    @workflow.update(name="reject")
    async def reject(self, decision: StepDecision) -> StepDecisionResult:
        """Reject the request at its current approval step."""
        await self._decide(False, decision)
        return StepDecisionResult(status="rejected")

    async def _decide(self, approved: bool, decision: StepDecision) -> None:
        round_no = self._round
        found = await self._approvers(self._asked)
        if decision.user_id not in found.user_ids:
            raise ApplicationError("you are not an approver of this step", type="not_an_approver")
        if not self._state.waiting_for_approval or self._decision is not None or round_no != self._round:
            raise ApplicationError("the request is not waiting for an approval", type="not_waiting")
        self._decision = (approved, decision)
        await workflow.wait_condition(lambda: not self._state.waiting_for_approval)

    @approve.validator
    def _validate_approve(self, decision: StepDecision) -> None:
        self._validate(decision)

    @reject.validator
    def _validate_reject(self, decision: StepDecision) -> None:
        self._validate(decision)

    def _validate(self, decision: StepDecision) -> None:
        if not self._state.waiting_for_approval or self._decision is not None or self._approval is None:
            raise ApplicationError("the request is not waiting for an approval", type="not_waiting")
        if decision.user_id == self._requester and not self._approval.allow_self_approval:
            raise ApplicationError("you made this request, so someone else must decide it", type="self_approval")

    @workflow.query(name="state")
    def state(self) -> ProcessState:
        """Status, whether an approval waits, and the step trail."""
        return self._state

    def _trail(self, step: Step, outcome: str, detail: str = "", comment: str = "") -> None:
        entry = {"step": step.label, "kind": step.kind, "outcome": outcome, "at": workflow.now().isoformat()}
        if detail:
            entry["detail"] = detail
        if comment:
            entry["comment"] = comment
        self._state.trail.append(entry)


def _holds(condition: str, facts: ConditionContext) -> bool:
    try:
        return evaluate(condition, facts)
    except ConditionError as error:
        raise ApplicationError(f"condition {condition!r} cannot be evaluated: {error}", non_retryable=True) from None
