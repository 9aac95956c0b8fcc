"""ReportWorkflow (`report-{kind}-{period}`): write and record one billing report, then walk the `report` steps.

ReportScheduleWorkflow is what a report kind's Temporal Schedule starts: it turns the scheduled time into the
period (in the vendor's time zone, day D clamped to the month's end) and starts that period's ReportWorkflow,
whose id makes a second start of the same period (a catch-up, a manual trigger) find the first.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from tessera.processes import NotifyStep, Step, WaitStep, WebhookStep, to_timedelta
from workflows.order_models import translated_sources
from workflows.report_models import (
    GenerateInput,
    GenerateResult,
    PeriodInput,
    PeriodResult,
    ReportScheduleInput,
    ReportScheduleResult,
    ReportStepInput,
    ReportWorkflowInput,
    ReportWorkflowResult,
)
from workflows.search_attributes import STATUS

LOCAL_TIMEOUT = timedelta(seconds=30)
GENERATE_TIMEOUT = timedelta(minutes=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def report_workflow_id(kind: str, period: str) -> str:
    return f"report-{kind}-{period}"


@workflow.defn(name="ReportWorkflow")
class ReportWorkflow:
    """Generate, record and announce one report; the same period again finds the first run's record and file."""

    def __init__(self) -> None:
        self._trail: list[dict[str, str]] = []

    @workflow.run
    async def run(self, request: ReportWorkflowInput) -> ReportWorkflowResult:
        workflow.upsert_search_attributes([STATUS.value_set("generating")])
        report: GenerateResult = await workflow.execute_activity(
            "reports.generate",
            GenerateInput(
                kind=request.kind, period=request.period, format=request.format, workflow_id=workflow.info().workflow_id
            ),
            result_type=GenerateResult,
            start_to_close_timeout=GENERATE_TIMEOUT,
            retry_policy=RETRY,
        )
        key = report_workflow_id(request.kind, request.period)
        # The record's own event, whatever the steps say: the ERP learns of every report.
        await self._outbox(ReportStepInput(report_id=report.report_id, key=f"{key}:generated", kind="webhook",
                                           event="report.generated"))  # fmt: skip
        workflow.upsert_search_attributes([STATUS.value_set("generated")])
        for step in request.process.steps:
            self._trail_step(step, "done", await self._step(step, request, report, key))
        workflow.upsert_search_attributes([STATUS.value_set("done")])
        return ReportWorkflowResult(report=report, trail=self._trail)

    async def _step(self, step: Step, request: ReportWorkflowInput, report: GenerateResult, key: str) -> str:
        if isinstance(step, NotifyStep):
            templates = request.process.templates
            await self._outbox(
                ReportStepInput(
                    report_id=report.report_id,
                    key=f"{key}:{step.label}",
                    kind="notify",
                    template=step.template,
                    source=templates.get(step.template),
                    translations=translated_sources(templates, step.template),
                    to=step.to,
                )
            )
            return ", ".join(step.to)
        if isinstance(step, WebhookStep):
            await self._outbox(
                ReportStepInput(report_id=report.report_id, key=f"{key}:{step.label}", kind="webhook", event=step.event)
            )
            return step.event
        if isinstance(step, WaitStep):
            await workflow.sleep(to_timedelta(step.duration))
            return step.duration
        return "skipped: not a report step"

    async def _outbox(self, request: ReportStepInput) -> None:
        await workflow.execute_local_activity(
            "reports.step", request, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
        )

    def _trail_step(self, step: Step, outcome: str, detail: str) -> None:
        self._trail.append({"step": step.label, "kind": step.kind, "outcome": outcome, "detail": detail})

    @workflow.query(name="trail")
    def trail(self) -> list[dict[str, str]]:
        """The steps done so far."""
        return self._trail


@workflow.defn(name="ReportScheduleWorkflow")
class ReportScheduleWorkflow:
    """Started by a report kind's Schedule: the period of the scheduled time, then that period's ReportWorkflow."""

    @workflow.run
    async def run(self, request: ReportScheduleInput) -> ReportScheduleResult:
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        found: PeriodResult = await workflow.execute_local_activity(
            "reports.period",
            PeriodInput(kind=request.kind, day=request.day, at=scheduled),
            result_type=PeriodResult,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=RETRY,
        )
        if found.period is None:
            return ReportScheduleResult(outcome="not_day_d")
        child_id = report_workflow_id(request.kind, found.period)
        try:
            handle = await workflow.start_child_workflow(
                ReportWorkflow.run,
                ReportWorkflowInput(
                    kind=request.kind, period=found.period, format=request.format, process=request.process
                ),
                id=child_id,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,  # a failed period may run again
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            return ReportScheduleResult(outcome="already_reported", workflow_id=child_id)
        await handle
        return ReportScheduleResult(outcome="started", workflow_id=child_id)
