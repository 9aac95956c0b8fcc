"""ReportWorkflow with the real activities on the time-skipping server; the Schedules on the dev server.

Histories are recorded like the others (`TESSERA_RECORD_HISTORIES=1`, see test_replay.py) into new files.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, Membership, Role, User
from tessera.orders.config import workflows_config
from tessera.processes import ProcessName, resolve_steps
from tessera.reports.models import Report
from tessera.reports.schedule_config import ReportSchedule, ReportSchedules
from tessera.settings import Settings
from tests.report_world import ZONE, add_subscription, build_report_world
from tests.workflows.test_replay import RECORD, save_history
from workflows.report import ReportWorkflow
from workflows.report_models import ReportScheduleResult, ReportWorkflowInput
from workflows.report_schedules import CATCHUP_WINDOW, ensure_report_schedules
from workflows.worker import build_worker


async def _world(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions() as session, session.begin():
        world = await build_report_world(session)
        admin = User(email="finance@vendor.example", name="Finance")
        session.add(admin)
        await session.flush()
        session.add(Membership(user_id=admin.id, organization_id=world.orgs["V"], role=Role.admin))
        return await add_subscription(session, world, "C1", date(2026, 2, 1), 2)


async def test_a_report_run_writes_records_and_announces_once(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    subscription = await _world(sessions)
    queue = f"reports-{uuid.uuid4()}"
    queued = settings.model_copy(update={"task_queue": queue, "worker_shutdown_grace_seconds": 0})
    process = resolve_steps(workflows_config(settings), ProcessName.report)
    request = ReportWorkflowInput(kind="renewals", period="2026-03", format="csv", process=process)
    client = time_skipping_env.client
    workflow_id = f"report-renewals-2026-03-{uuid.uuid4().hex[:8]}"  # the server outlives this test's database
    async with build_worker(client, queued, sessions):
        first = await client.execute_workflow(ReportWorkflow.run, request, id=workflow_id, task_queue=queue)
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        again = await client.execute_workflow(ReportWorkflow.run, request, id=workflow_id, task_queue=queue)
    assert first.report.created
    assert not again.report.created
    assert again.report.sha256 == first.report.sha256
    assert first.report.row_count == 1
    assert [entry["step"] for entry in first.trail] == ["tell the vendor", "webhook"]
    path = settings.resolved_reports_dir / first.report.file
    assert f"REN-{subscription}-2" in path.read_text()
    assert (path.parent / f"{path.name}.manifest.json").is_file()
    async with sessions() as session:
        reports = (await session.scalars(select(Report))).all()
        events = (await session.scalars(select(Event).order_by(Event.key))).all()
    assert [report.workflow_id for report in reports] == [workflow_id]
    assert [(event.kind, event.name) for event in events] == [
        ("webhook", "report.generated"),
        ("notification", "report_ready.txt.j2"),
        ("webhook", "report.ready"),
    ]
    generated, notified, _ready = events
    assert generated.payload["sha256"] == first.report.sha256
    assert generated.payload["totals"] == [{"currency": "EUR", "rows": 1, "net_amount": "240.00"}]
    assert notified.recipients == ["finance@vendor.example"]
    assert "renewals for 2026-03 is ready" in notified.subject
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "report_renewals")


async def _wait_for_report(sessions: async_sessionmaker[AsyncSession], kind: str) -> Report:
    for _ in range(300):
        async with sessions() as session:
            found = await session.scalar(select(Report).where(Report.kind == kind, Report.sha256.is_not(None)))
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} report was recorded")


async def test_the_schedules_produce_the_monthly_files(
    dev_env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the Schedules and their periods' workflow ids live on the server: once per server is enough")
    await _world(sessions)
    today = datetime.now(ZoneInfo(ZONE)).date()
    queue = f"reports-{uuid.uuid4()}"
    queued = settings.model_copy(update={"task_queue": queue, "worker_shutdown_grace_seconds": 0})
    config = workflows_config(settings).model_copy(deep=True)
    config.report.schedules = ReportSchedules(
        renewals=ReportSchedule(day=today.day, time="23:59", format="csv"),
        active_subscriptions=ReportSchedule(day=today.day, time="23:59", format="json"),
    )
    client = dev_env.client
    assert await ensure_report_schedules(client, sessions, config, queue) == [
        "report-renewals",
        "report-active-subscriptions",
    ]
    # Twice: updating leaves one Schedule per kind.
    await ensure_report_schedules(client, sessions, config, queue)
    try:
        described = await client.get_schedule_handle("report-renewals").describe()
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert described.schedule.policy.catchup_window == CATCHUP_WINDOW
        assert described.schedule.spec.time_zone_name == ZONE
        async with build_worker(client, queued, sessions):
            for kind in ("renewals", "active-subscriptions"):
                await client.get_schedule_handle(f"report-{kind}").trigger()
            renewals = await _wait_for_report(sessions, "renewals")
            active = await _wait_for_report(sessions, "active-subscriptions")
            last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
            assert renewals.period == last_month
            assert active.period == today.isoformat()
            assert active.format == "json"
            assert (settings.resolved_reports_dir / active.file_name).is_file()
            assert renewals.workflow_id == f"report-renewals-{last_month}"
            # A second firing for the same period finds the first's workflow: still one record. (Once the first
            # has finished: while it runs, the overlap policy skips a firing.)
            handle = client.get_schedule_handle("report-renewals")
            [first_run] = (await handle.describe()).info.recent_actions
            first_id = first_run.action.workflow_id  # type: ignore[attr-defined]
            first_outcome = await client.get_workflow_handle(first_id, result_type=ReportScheduleResult).result()
            assert first_outcome.outcome == "started"
            await handle.trigger()
            for _ in range(100):
                recent = (await handle.describe()).info.recent_actions
                if len(recent) >= 2:
                    break
                await asyncio.sleep(0.2)
            started = recent[-1].action.workflow_id  # type: ignore[attr-defined]
            outcome = await client.get_workflow_handle(started, result_type=ReportScheduleResult).result()
            assert outcome.outcome == "already_reported"
            if RECORD:
                save_history(await client.get_workflow_handle(first_id).fetch_history(), "report_schedule")
        async with sessions() as session:
            count = len((await session.scalars(select(Report))).all())
        assert count == 2
    finally:
        config.report.schedules = None
        await ensure_report_schedules(client, sessions, config, queue)
