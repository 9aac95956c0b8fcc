"""One Temporal Schedule per configured report kind (`report-{kind}`), created or updated at worker start-up.

Policies: a run missed while Temporal or the workers were down is caught up within three days (a later start
would be a surprise; the period can always be produced on demand), and a run still going when the next fires
makes that one skip. The period comes from the scheduled time, and its workflow id from the period, so a
caught-up, repeated or manual run of a period finds the first one's report.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from tessera.processes import ProcessName, WorkflowsConfig, resolve_steps
from tessera.reports.schedule_config import ReportSchedule
from tessera.reports.sellers import vendor_timezone
from workflows.report import ReportScheduleWorkflow
from workflows.report_models import ReportScheduleInput

log = logging.getLogger(__name__)

CATCHUP_WINDOW = timedelta(days=3)
KINDS = ("renewals", "active-subscriptions")


def schedule_id(kind: str) -> str:
    return f"report-{kind}"


def report_schedule(
    kind: str, setting: ReportSchedule, config: WorkflowsConfig, zone: str, task_queue: str
) -> Schedule:
    # Days 29-31 do not exist in every month: the calendar fires from the 28th up to D, and the workflow runs
    # only on the day that is D, or the month's last day when the month is shorter.
    days = ScheduleRange(start=min(setting.day, 28), end=setting.day)
    process = resolve_steps(config, ProcessName.report)
    request = ReportScheduleInput(kind=kind, day=setting.day, format=setting.format, process=process)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReportScheduleWorkflow.run, request, id=f"report-schedule-{kind}", task_queue=task_queue
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[days],
                    hour=[ScheduleRange(setting.hour)],
                    minute=[ScheduleRange(setting.minute)],
                    second=[ScheduleRange(0)],
                    comment=f"{kind} on day {setting.day} at {setting.time}",
                )
            ],
            time_zone_name=zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=setting.paused, note=f"billing report: {kind} (config/workflows.yaml)"),
    )


async def ensure_report_schedules(
    client: Client, sessions: async_sessionmaker[AsyncSession], config: WorkflowsConfig, task_queue: str
) -> list[str]:
    """Create or update the Schedule of each configured kind, delete those no longer configured; idempotent."""
    async with sessions() as session:
        zone = await vendor_timezone(session)
    configured = dict(config.report.schedules.items()) if config.report.schedules else {}
    done: list[str] = []
    for kind in KINDS:
        setting = configured.get(kind)
        handle = client.get_schedule_handle(schedule_id(kind))
        if setting is None:
            try:
                await handle.delete()
                log.info("report schedule %s deleted: no longer configured", schedule_id(kind))
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
            continue
        schedule = report_schedule(kind, setting, config, zone, task_queue)
        try:
            await client.create_schedule(schedule_id(kind), schedule)
        except ScheduleAlreadyRunningError:

            def replace(_previous: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await handle.update(replace)
        done.append(schedule_id(kind))
    return done


async def keep_report_schedules(
    client: Client, sessions: async_sessionmaker[AsyncSession], config: WorkflowsConfig, task_queue: str
) -> None:
    """At worker start-up: the Schedules as configured; a failure is logged, the worker still serves the rest."""
    try:
        done = await ensure_report_schedules(client, sessions, config, task_queue)
    except RPCError:
        log.exception("report schedules not created or updated (the next worker start tries again)")
        return
    log.info("report schedules: %s", ", ".join(done) or "none configured")
