"""SubscriptionWorkflow: one run per term, continued as new at each renewal.

A run reads where its subscription stands (an activity: the database is where the API records cancellations and
revocations, under the subscription's row lock), resolves the `subscription` steps as workflows.yaml says when
the term begins (the running term keeps them; the next term takes the file as it is then), and then waits
durably: reminders at their times, the notice deadline (commitment), the term's end (renewal or expiry).
Signals only wake it: `changed` (read the subscription again) and `activated` (the first activation of a
subscription that starts then, which a pending run also finds recorded when it reads its subscription). Every
instant comes from an activity, computed once and kept in history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate

from tessera.processes import (
    ConditionContext,
    ConditionError,
    NotifyStep,
    ReminderAnchor,
    ReminderStep,
    RenewStep,
    Step,
    WaitStep,
    WebhookStep,
    evaluate,
    to_timedelta,
)
from workflows import search_attributes as sa
from workflows.order_models import translated_sources
from workflows.subscription_models import (
    ActivatedSignal,
    BeginResult,
    ProcessInput,
    ProcessResult,
    RenewAction,
    RenewResult,
    StepInput,
    SubscriptionSnapshot,
    SubscriptionState,
    SubscriptionWorkflowInput,
    TermEndAction,
    TermEndInput,
    TermEndOutcome,
    TermEndResult,
    TermInfo,
    TermRef,
)

LOCAL_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ENDED = ("expired", "revoked")
T = TypeVar("T")

# Changes to the command sequence; runs recorded before each change replay along the old path.
STATUS_FOLLOWS_CHANGES = "status-attribute-follows-changes"
ONE_WRITE_PER_WAKE_UP = "one-read-at-start-one-write-at-term-end"
RENEWAL_BEGINS_NEXT_RUN = "renewal-reads-next-term-commitment-at-term-end"
"""The renewal's transaction reads what the next run begins with (carried in its input), and a notice deadline at
the term's very end is committed by the renewal itself: a renewal herd costs one local activity per subscription."""
ANCHOR_FROM_RECORD = "pending-run-anchors-at-recorded-first-activation"
"""A pending run that reads a recorded first activation anchors at it without waiting for a signal (one sent
before the workflow existed, or never taken by Temporal)."""


class _Ended(Exception):
    """The subscription was revoked (or expired) while the run waited."""


@workflow.defn(name="SubscriptionWorkflow")
class SubscriptionWorkflow:
    """A subscription's current term: reminders, commitment at the notice deadline, renewal or expiry at its end."""

    def __init__(self) -> None:
        self._input: SubscriptionWorkflowInput | None = None
        self._snapshot = SubscriptionSnapshot(status="active")
        self._changed = False
        self._activated_at: datetime | None = None
        self._trail: list[dict[str, str]] = []
        self._version = ""
        self._next_begun: BeginResult | None = None

    @workflow.signal(name="changed")
    def changed(self) -> None:
        """The subscription changed in the database (cancelled, uncancelled, revoked): read it again."""
        self._changed = True

    @workflow.signal(name="activated")
    def activated(self, signal: ActivatedSignal) -> None:
        """One of its licenses was activated; the first activation fixes the anchor of a pending subscription."""
        if self._activated_at is None:
            self._activated_at = signal.activated_at

    @workflow.query(name="state")
    def state(self) -> SubscriptionState:
        """The subscription as this run last read it, and the run's trail."""
        return SubscriptionState(**self._snapshot.model_dump(), version=self._version, trail=self._trail)

    @workflow.run
    async def run(self, request: SubscriptionWorkflowInput) -> SubscriptionState:
        self._input = request
        try:
            merged = workflow.patched(ONE_WRITE_PER_WAKE_UP)
            begun = None
            if merged:
                # A change signalled before this first task (self._changed) makes the carried read stale.
                carried = request.begun is not None and not self._changed
                if carried and workflow.patched(RENEWAL_BEGINS_NEXT_RUN):
                    begun = request.begun
                else:
                    begun = await self._local("subscriptions.begin", self._ref(), BeginResult)
                assert begun is not None
                self._snapshot, self._version = begun.snapshot, begun.resolved.process.version
            else:
                await self._read()
            if self._snapshot.status == "pending":
                await self._wait_for_activation()
            term = self._snapshot.term
            if self._snapshot.status in ENDED or term is None:
                raise _Ended
            self._publish_attributes()
            resolved = begun.resolved if begun is not None else await self._resolve()
            await self._reminders_and_deadline(term, resolved)
            await self._until(term.ends_at)
            ended = (
                await self._end_of_term_merged(term, resolved) if merged else await self._end_of_term(term, resolved)
            )
            if not ended:
                raise _Ended
        except _Ended:
            self._publish_attributes()
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.state()
        await workflow.wait_condition(workflow.all_handlers_finished)
        carry = self._next_begun if not self._changed else None
        workflow.continue_as_new(
            SubscriptionWorkflowInput(
                **{**request.model_dump(exclude={"begun"}), "term_no": term.number + 1}, begun=carry
            ),
        )

    # --- phases ------------------------------------------------------------------------------------------------

    async def _wait_for_activation(self) -> None:
        self._publish_attributes()
        while self._snapshot.status == "pending":
            self._changed = False
            recorded = self._snapshot.first_activated_at
            if self._activated_at is None and recorded is not None and workflow.patched(ANCHOR_FROM_RECORD):
                self._activated_at = recorded
            await workflow.wait_condition(lambda: self._activated_at is not None or self._changed)
            if self._activated_at is not None:
                self._snapshot = await self._local(
                    "subscriptions.activate", self._ref(at=self._activated_at), SubscriptionSnapshot
                )
                self._note("activated", f"anchor fixed by the activation at {self._activated_at.isoformat()}")
            else:
                await self._read()
            if self._snapshot.status in ENDED:
                raise _Ended

    async def _reminders_and_deadline(self, term: TermInfo, resolved: ProcessResult) -> None:
        """Reminders in time order, then the commitment at the notice deadline (skipped if cancelled by then)."""
        milestones: list[tuple[datetime, int, ReminderStep | None]] = []
        for index, step in enumerate(resolved.process.steps):
            if isinstance(step, ReminderStep):
                anchor = term.cancel_deadline_at if step.of == ReminderAnchor.cancel_deadline else term.ends_at
                milestones.append((anchor - to_timedelta(step.before), index, step))
        milestones.append((term.cancel_deadline_at, len(resolved.process.steps), None))
        for at, _, reminder in sorted(milestones, key=lambda item: (item[0], item[1])):
            if reminder is not None and at <= workflow.now():
                self._note(reminder.label, "skipped: its time had passed when the term began")
                continue
            await self._until(at)
            if reminder is None:
                if term.cancel_deadline_at >= term.ends_at and workflow.patched(RENEWAL_BEGINS_NEXT_RUN):
                    self._note("commitment", "at the term's end, with the renewal (the deadline is the term's end)")
                    continue
                await self._commit(term)
            elif self._snapshot.cancellation_term_no == term.number and reminder.of == ReminderAnchor.cancel_deadline:
                self._note(reminder.label, "skipped: the subscription is cancelled")
            elif reminder.when and not self._holds(reminder.when, resolved.facts):
                self._note(reminder.label, f"skipped: condition false: {reminder.when}")
            else:
                await self._outbox(
                    StepInput(
                        subscription_id=self._subscription_id,
                        order_id=self._order_id(resolved),
                        key=f"subscription-{self._subscription_id}:term-{term.number}:{reminder.label}",
                        kind="notify",
                        template=reminder.template,
                        source=resolved.process.templates.get(reminder.template),
                        translations=translated_sources(resolved.process.templates, reminder.template),
                        to=reminder.to,
                        variables={"reminder": reminder.label, "of": reminder.of.value, "at": at.isoformat()},
                    )
                )
                self._note(reminder.label, "sent")

    async def _commit(self, term: TermInfo) -> None:
        if self._snapshot.cancellation_term_no == term.number:
            self._note("commitment", "none: a cancellation takes effect at the end of this term")
            return
        committed: bool = await self._local("subscriptions.commit", self._ref(term.number), bool)
        self._snapshot.committed = committed
        self._note("commitment", "the next term is binding" if committed else "not committed")

    async def _end_of_term(self, term: TermInfo, resolved: ProcessResult) -> bool:
        """Renew (True) or expire (False) at the end of `term`, waiting while a cancellation is undecided."""
        while True:
            outcome = (await self._local("subscriptions.term_end", self._ref(term.number), TermEndResult)).outcome
            if outcome == "ended":
                await self._read()
                return False
            if outcome == "expire":
                await workflow.execute_local_activity(
                    "subscriptions.expire",
                    self._ref(term.number),
                    start_to_close_timeout=LOCAL_TIMEOUT,
                    retry_policy=RETRY,
                )
                await self._read()
                self._note("expired", f"effective end of term {term.number}")
                return False
            if outcome == "renew":
                break
            self._note("end of term", "waiting for the decision on a cancellation")
            self._changed = False
            await workflow.wait_condition(lambda: self._changed)
        return await self._renewal_steps(term, resolved)

    async def _end_of_term_merged(self, term: TermInfo, resolved: ProcessResult) -> bool:
        """Like _end_of_term, but the decision, the renewal and the outbox steps up to the first `wait` are one write.

        A renewal herd (every subscription aligned to 1 January) costs the worker one local activity per
        subscription at the term's end instead of one per step.
        """
        batch, rest = self._term_end_batch(term, resolved)
        while True:
            self._changed = False  # a change signalled from here on makes the read carried to the next run stale
            result = await self._local(
                "subscriptions.end_term",
                TermEndInput(
                    subscription_id=self._subscription_id,
                    term_no=term.number,
                    at=workflow.now(),
                    actions=batch,
                    begin_next=workflow.patched(RENEWAL_BEGINS_NEXT_RUN),
                ),
                TermEndOutcome,
            )
            if result.outcome != "undecided":
                break
            self._note("end of term", "waiting for the decision on a cancellation")
            self._changed = False
            await workflow.wait_condition(lambda: self._changed)
        if result.snapshot is not None:
            self._snapshot = result.snapshot
        self._next_begun = result.begun
        if result.outcome == "expired":
            self._note("expired", f"effective end of term {term.number}")
            return False
        if result.outcome == "ended" or result.term is None:
            self._note("renew", "not renewed: the subscription ended meanwhile")
            return False
        self._note("renew", f"term {result.term.number} runs through {result.term.valid_through}")
        return await self._renewal_steps(term, resolved, rest) if rest else True

    def _term_end_batch(self, term: TermInfo, resolved: ProcessResult) -> tuple[list[TermEndAction], list[Step]]:
        """The renewal steps up to the first `wait` as one batch (conditions decided here), and the steps after."""
        batch: list[TermEndAction] = []
        steps: list[Step] = [step for step in resolved.process.steps if not isinstance(step, ReminderStep)]
        for index, step in enumerate(steps):
            if isinstance(step, WaitStep):
                return batch, steps[index:]
            if step.when and not self._holds(step.when, resolved.facts):
                self._note(step.label, f"skipped: condition false: {step.when}")
                continue
            key = f"subscription-{self._subscription_id}:term-{term.number + 1}:{step.label}"
            if isinstance(step, RenewStep):
                batch.append(RenewAction(label=step.label))
            elif isinstance(step, NotifyStep):
                batch.append(self._notify_input(resolved, key, step))
            elif isinstance(step, WebhookStep):
                batch.append(self._webhook_input(resolved, key, step))
        return batch, []

    def _notify_input(self, resolved: ProcessResult, key: str, step: NotifyStep) -> StepInput:
        return StepInput(
            subscription_id=self._subscription_id,
            order_id=self._order_id(resolved),
            key=key,
            kind="notify",
            template=step.template,
            source=resolved.process.templates.get(step.template),
            translations=translated_sources(resolved.process.templates, step.template),
            to=step.to,
        )

    def _webhook_input(self, resolved: ProcessResult, key: str, step: WebhookStep) -> StepInput:
        return StepInput(
            subscription_id=self._subscription_id,
            order_id=self._order_id(resolved),
            key=key,
            kind="webhook",
            event=step.event,
        )

    async def _renewal_steps(self, term: TermInfo, resolved: ProcessResult, steps: list[Step] | None = None) -> bool:
        for step in resolved.process.steps if steps is None else steps:
            if isinstance(step, ReminderStep):
                continue
            if step.when and not self._holds(step.when, resolved.facts):
                self._note(step.label, f"skipped: condition false: {step.when}")
                continue
            key = f"subscription-{self._subscription_id}:term-{term.number + 1}:{step.label}"
            if isinstance(step, RenewStep):
                renewed = await self._local("subscriptions.renew", self._ref(term.number + 1), RenewResult)
                if renewed.term is None:
                    await self._read()
                    self._note(step.label, "not renewed: the subscription ended meanwhile")
                    return False
                self._note(step.label, f"term {renewed.term.number} runs through {renewed.term.valid_through}")
            elif isinstance(step, NotifyStep):
                await self._outbox(self._notify_input(resolved, key, step))
                self._note(step.label, "sent")
            elif isinstance(step, WebhookStep):
                await self._outbox(self._webhook_input(resolved, key, step))
                self._note(step.label, step.event)
            elif isinstance(step, WaitStep):
                await workflow.sleep(to_timedelta(step.duration))
        return True

    # --- waiting and reading -----------------------------------------------------------------------------------

    async def _until(self, at: datetime) -> None:
        """Sleep until `at`, reading the subscription again whenever it changes; _Ended if it was revoked."""
        while True:
            remaining = at - workflow.now()
            if remaining <= timedelta(0):
                return
            self._changed = False
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=remaining)
            except TimeoutError:
                return
            status = self._snapshot.status
            await self._read()
            if self._snapshot.status in ENDED:
                raise _Ended
            if self._snapshot.status != status and workflow.patched(STATUS_FOLLOWS_CHANGES):
                self._publish_attributes()  # e.g. non_renewing while cancelled, active again after an uncancel

    async def _read(self) -> None:
        self._snapshot = await self._local("subscriptions.snapshot", self._ref(), SubscriptionSnapshot)

    async def _resolve(self) -> ProcessResult:
        resolved = await self._local(
            "subscriptions.resolve",
            ProcessInput(subscription_id=self._subscription_id, process="subscription"),
            ProcessResult,
        )
        self._version = resolved.process.version
        return resolved

    def _publish_attributes(self) -> None:
        """Status and expiry for operators' filters: ids and codes only (search attributes are not encrypted)."""
        snapshot = self._snapshot
        updates: list[SearchAttributeUpdate[Any]] = [sa.STATUS.value_set(snapshot.status)]
        if snapshot.term is not None:
            updates.append(sa.EXPIRY.value_set(snapshot.term.ends_at))
        workflow.upsert_search_attributes(updates)

    # --- helpers -----------------------------------------------------------------------------------------------

    @property
    def _subscription_id(self) -> str:
        assert self._input is not None
        return self._input.subscription_id

    @staticmethod
    def _order_id(resolved: ProcessResult) -> str:
        assert resolved.facts.order is not None
        return resolved.facts.order.id

    def _ref(self, term_no: int = 0, at: datetime | None = None) -> TermRef:
        return TermRef(subscription_id=self._subscription_id, term_no=term_no, at=at or workflow.now())

    async def _outbox(self, request: StepInput) -> None:
        await workflow.execute_local_activity(
            "subscriptions.step", request, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
        )

    async def _local(self, name: str, payload: object, result_type: type[T]) -> T:
        result: T = await workflow.execute_local_activity(
            name, payload, result_type=result_type, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
        )
        return result

    def _holds(self, condition: str, facts: ConditionContext) -> bool:
        try:
            return evaluate(condition, facts)
        except ConditionError:
            return False

    def _note(self, step: str, detail: str) -> None:
        self._trail.append({"step": step, "detail": detail, "at": workflow.now().isoformat()})
