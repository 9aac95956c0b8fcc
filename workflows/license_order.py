"""LicenseOrderWorkflow: walks the resolved steps of one order, deterministically.

The steps come frozen in the input, so editing workflows.yaml never changes a running order. All I/O happens in
activities; this code only orders, waits, decides and records the trail. Approvals arrive as updates whose
validator admits only the approvers resolved when the approval started, and only while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Passed through the sandbox by name (workflows/worker.py PURE_MODULES): pure models and languages only.
from tessera.orders.status import OrderStatus
from tessera.processes import (
    AllocateStep,
    ApprovalStep,
    ApproverSet,
    ConditionError,
    CreateLicenseStep,
    NotifyStep,
    OnTimeout,
    Step,
    VisibilityStep,
    WaitStep,
    WebhookStep,
    evaluate,
    to_timedelta,
)
from workflows import search_attributes as sa
from workflows.order_models import (
    Action,
    AllocateInput,
    ApplyInput,
    ApprovalDecision,
    ApproversInput,
    ApproversResult,
    CreatedLicenses,
    DecisionResult,
    FailInput,
    NotifyInput,
    OrderRef,
    OrderState,
    OrderWorkflowInput,
    PublishInput,
    TrailEntry,
    VisibilityInput,
    translated_sources,
)

R = TypeVar("R", bound=BaseModel)

# licenses.create commits and heartbeats every chunk of lines, so a long order is bounded by this generous total
# while a dead worker is still noticed within HEARTBEAT_TIMEOUT and its retry resumes after the last chunk.
ACTIVITY_TIMEOUT = timedelta(minutes=30)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
LOCAL_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

# Changes to the command sequence; runs recorded before each change replay along the old path.
FAILURE_PUBLISHES_ONLY_FAILURE = "failed-order-revokes-and-publishes-only-its-failure"
DECISION_RECHECKS_APPROVERS = "approval-decision-rechecks-approvers"


@workflow.defn(name="LicenseOrderWorkflow")
class LicenseOrderWorkflow:
    """One license order: approval, creation, allocation, visibility, notification — as configured."""

    def __init__(self) -> None:
        self._state = OrderState(status=OrderStatus.accepted)
        self._decision: tuple[bool, ApprovalDecision] | None = None
        self._order_id = ""
        self._order: OrderWorkflowInput | None = None
        # The approval waiting now: its step, who it asks (re-resolved when a decision arrives) and its round.
        self._approval_step: ApprovalStep | None = None
        self._asked: ApproverSet | list[str] = []
        self._round = 0
        # Database steps wait here and are written together with the next status change (see _set_status).
        self._pending: list[Action] = []

    # --- the run ---------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, order: OrderWorkflowInput) -> OrderState:
        self._order_id = order.order_id
        self._order = order
        self._state.version = order.process.version
        try:
            for step in order.process.steps:
                if step.when and not _holds(step.when, order):
                    self._trail(step, "skipped", f"condition false: {step.when}")
                    continue
                if not await self._run_step(step, order):
                    await self._local("orders.release_quota", OrderRef(order_id=order.order_id))
                    await self._set_status(OrderStatus.rejected)
                    break
            else:
                await self._set_status(OrderStatus.fulfilled)
        except (ActivityError, ApplicationError) as failure:
            # A business failure (a deleted product, a condition or template that cannot be evaluated): record
            # it; retrying the same deterministic step could only fail the same way.
            reason = _reason(failure)
            self._state.trail.append(self._entry("order", "order", "failed", reason))
            if workflow.patched(FAILURE_PUBLISHES_ONLY_FAILURE):
                await self._fail(reason)
            else:
                await self._local("orders.release_quota", OrderRef(order_id=order.order_id))
                await self._set_status(OrderStatus.failed)
        # Let a decision that arrived at the last moment get its answer before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _run_step(self, step: Step, order: OrderWorkflowInput) -> bool:
        """Run one step; False when the order was rejected."""
        if isinstance(step, ApprovalStep):
            return await self._approval(step, order)
        self._trail(step, "started")
        if isinstance(step, CreateLicenseStep):
            if self._state.status != OrderStatus.approved:
                await self._set_status(OrderStatus.approved)
            await self._flush()
            created = await self._fetch("licenses.create", OrderRef(order_id=order.order_id), CreatedLicenses)
            detail = f"{created.created} license(s) and ticket(s)"
        elif isinstance(step, AllocateStep):
            self._pending.append(AllocateInput(order_id=order.order_id, to=step.to))
            detail = f"to {step.to.value}"
        elif isinstance(step, VisibilityStep):
            self._pending.append(VisibilityInput(order_id=order.order_id, visible_to=step.visible_to))
            detail = step.visible_to.value
        elif isinstance(step, NotifyStep):
            key = f"{step.label}:{len(self._state.trail)}"
            self._pending.append(
                NotifyInput(
                    order_id=order.order_id,
                    key=key,
                    template=step.template,
                    source=order.process.templates.get(step.template),
                    translations=translated_sources(order.process.templates, step.template),
                    to=step.to,
                )
            )
            detail = ", ".join(step.to)
        elif isinstance(step, WaitStep):
            await self._flush()
            await workflow.sleep(to_timedelta(step.duration))
            detail = step.duration
        elif isinstance(step, WebhookStep):
            key = f"{step.label}:{len(self._state.trail)}"
            self._pending.append(PublishInput(order_id=order.order_id, key=key, event=step.event))
            detail = step.event
        else:
            raise ApplicationError(f"step kind {step.kind!r} does not belong in a license order", non_retryable=True)
        self._trail(step, "done", detail)
        return True

    async def _approval(self, step: ApprovalStep, order: OrderWorkflowInput) -> bool:
        approvers: ApproverSet | list[str] = step.approvers
        rounds = 2 if step.on_timeout == OnTimeout.escalate and step.escalate_to is not None else 1
        for round_no in range(rounds):
            if round_no == 1 and step.escalate_to is not None:
                approvers = step.escalate_to
            found = await self._local_fetch(
                "orders.approvers", ApproversInput(order_id=order.order_id, approvers=approvers), ApproversResult
            )
            self._approval_step, self._asked, self._round = step, approvers, self._round + 1
            self._decision = None
            self._state.waiting_for_approval = True
            self._trail(step, "escalated" if round_no else "started", f"{len(found.user_ids)} approver(s)")
            self._pending.append(
                NotifyInput(
                    order_id=order.order_id,
                    key=f"{step.label}:{round_no}:{len(self._state.trail)}",
                    template=step.template,
                    source=order.process.templates.get(step.template),
                    translations=translated_sources(order.process.templates, step.template),
                    to=found.emails,
                    approval_step=step.label,
                    approval_deadline=workflow.now() + to_timedelta(step.timeout),
                    escalated=round_no > 0,
                )
            )
            await self._set_status(OrderStatus.pending_approval)
            # On timeout the decision stays None and on_timeout decides below.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._decision is not None, timeout=to_timedelta(step.timeout))
            self._state.waiting_for_approval = False
            self._approval_step = None
            if self._decision is not None:
                approved, decision = self._decision
                self._trail(
                    step, "approved" if approved else "rejected", f"by user {decision.user_id}", decision.comment
                )
                if approved:
                    await self._set_status(OrderStatus.approved)
                return approved
            self._trail(step, "timed_out", f"no decision within {step.timeout}")
            if step.on_timeout == OnTimeout.approve:
                await self._set_status(OrderStatus.approved)
                return True
        return False

    # --- approvals as updates ----------------------------------------------------------------------------------

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> DecisionResult:
        """Approve the order at its current approval step."""
        await self._decide(True, decision)
        return DecisionResult(status=self._state.status)

    @workflow.update(name="reject")
    async def reject(self, decision: ApprovalDecision) -> DecisionResult:
        """Reject the order at its current approval step."""
        await self._decide(False, decision)
        return DecisionResult(status=OrderStatus.rejected)

    async def _decide(self, approved: bool, decision: ApprovalDecision) -> None:
        if workflow.patched(DECISION_RECHECKS_APPROVERS):
            # Rights are read again now, not trusted from when the approval started: an admin demoted or removed
            # during a three-day wait can no longer decide, and one appointed meanwhile can.
            round_no = self._round
            found = await self._local_fetch(
                "orders.approvers", ApproversInput(order_id=self._order_id, approvers=self._asked), ApproversResult
            )
            if decision.user_id not in found.user_ids:
                raise ApplicationError("you are not an approver of this step", type="not_an_approver")
            if not self._state.waiting_for_approval or self._decision is not None or round_no != self._round:
                raise ApplicationError("the order is not waiting for an approval", type="not_waiting")
        self._decision = (approved, decision)
        await workflow.wait_condition(lambda: not self._state.waiting_for_approval)

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._validate(decision)

    @reject.validator
    def _validate_reject(self, decision: ApprovalDecision) -> None:
        self._validate(decision)

    def _validate(self, decision: ApprovalDecision) -> None:
        # Validators reject before anything is written to history, so a refused decision leaves no trace.
        if not self._state.waiting_for_approval or self._decision is not None or self._approval_step is None:
            raise ApplicationError("the order is not waiting for an approval", type="not_waiting")
        requester = self._order.facts.requester if self._order is not None else None
        is_requester = requester is not None and requester.kind == "user" and requester.id == decision.user_id
        if is_requester and not self._approval_step.allow_self_approval:
            # Four eyes: whoever ordered does not also approve, unless the step allows it.
            raise ApplicationError("you requested this order, so someone else must decide it", type="self_approval")

    @workflow.query(name="state")
    def state(self) -> OrderState:
        """Status and step trail."""
        return self._state

    # --- helpers -----------------------------------------------------------------------------------------------

    async def _local(self, name: str, payload: BaseModel) -> None:
        # Steps that are short writes to our own database run as local activities: no server round trip each,
        # which is most of what an order costs (see bench/orders.py). They are idempotent like the others.
        await workflow.execute_local_activity(name, payload, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY)

    async def _local_fetch(self, name: str, payload: BaseModel, result_type: type[R]) -> R:
        result: R = await workflow.execute_local_activity(
            name, payload, result_type=result_type, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
        )
        return result

    async def _fetch(self, name: str, payload: BaseModel, result_type: type[R]) -> R:
        # A regular activity with heartbeats: creating many licenses takes a while, and a dead worker's
        # attempt must be noticed and retried elsewhere, resuming after the last committed chunk.
        result: R = await workflow.execute_activity(
            name,
            payload,
            result_type=result_type,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
        return result

    def _entry(self, step: str, kind: str, outcome: str, detail: str = "", comment: str = "") -> TrailEntry:
        return TrailEntry(step=step, kind=kind, outcome=outcome, at=workflow.now(), detail=detail, comment=comment)

    def _trail(self, step: Step, outcome: str, detail: str = "", comment: str = "") -> None:
        self._state.trail.append(self._entry(step.label, step.kind, outcome, detail, comment))

    async def _fail(self, reason: str) -> None:
        """Revoke what the order created, give its quota back and publish its failure, in one transaction.

        Notifications and events still waiting for the next status write are dropped: they were written for an
        order that was going to succeed, and a failed order must never look fulfilled.
        """
        for action in self._pending:
            if isinstance(action, NotifyInput | PublishInput):
                # The trail said "done" when the step was queued; say plainly that it never went out.
                kind = "notify" if isinstance(action, NotifyInput) else "webhook"
                label = action.key.rsplit(":", 1)[0]
                self._state.trail.append(self._entry(label, kind, "withdrawn", "not sent: the order failed"))
        self._pending = []
        self._state.status = OrderStatus.failed
        self._state.waiting_for_approval = False
        workflow.upsert_search_attributes([sa.STATUS.value_set(OrderStatus.failed.value)])
        await self._local("orders.fail", FailInput(order_id=self._order_id, reason=reason, state=self._state))

    async def _set_status(self, status: OrderStatus) -> None:
        self._state.status = status
        workflow.upsert_search_attributes([sa.STATUS.value_set(status.value)])
        await self._record()

    async def _record(self) -> None:
        """Write the pending database steps and the current state in one transaction.

        Merging consecutive steps into one local activity is what lets an order cost Temporal little more than
        its one regular activity (licenses.create): see bench/orders.py. The trail in the database is therefore
        current at every status change; the `state` query is current always.
        """
        actions = list(self._pending)
        await self._local("orders.apply", ApplyInput(order_id=self._order_id, actions=actions, state=self._state))
        # Dropped only once written: if the write fails, _fail still knows what never went out.
        del self._pending[: len(actions)]

    async def _flush(self) -> None:
        if self._pending:
            await self._record()


def _holds(condition: str, order: OrderWorkflowInput) -> bool:
    try:
        return evaluate(condition, order.facts)
    except ConditionError as error:
        # Deterministic, so retrying cannot help: the order fails with the reason instead of hanging.
        raise ApplicationError(f"condition {condition!r} cannot be evaluated: {error}", non_retryable=True) from None


def _reason(failure: BaseException) -> str:
    cause = failure.cause if isinstance(failure, ActivityError) and failure.cause else failure
    return str(cause)
