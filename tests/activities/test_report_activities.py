"""Report activities called directly, twice: the business key (kind + period) makes the second a no-op."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.reports import ReportActivities
from tessera.models import Event
from tessera.reports.models import Report, ReportedRenewal
from tessera.settings import REPO_ROOT
from tests.report_world import add_subscription, build_report_world
from workflows.report_models import GenerateInput, PeriodInput, ReportStepInput


@pytest.fixture
async def activities(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> ReportActivities:
    async with sessions() as session, session.begin():
        world = await build_report_world(session)
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
    return ReportActivities(sessions, tmp_path / "reports", REPO_ROOT / "config" / "reports", "https://portal.test/")


async def test_generate_and_step_twice_write_once(
    activities: ReportActivities, sessions: async_sessionmaker[AsyncSession]
) -> None:
    env = ActivityEnvironment()
    request = GenerateInput(kind="renewals", period="2026-03", format="csv", workflow_id="report-renewals-2026-03")
    first = await env.run(activities.generate, request)
    second = await env.run(activities.generate, request)
    assert first.created
    assert not second.created
    assert (second.report_id, second.sha256, second.row_count) == (first.report_id, first.sha256, 1)
    step = ReportStepInput(report_id=first.report_id, key="report-renewals-2026-03:generated", kind="webhook",
                           event="report.generated")  # fmt: skip
    await env.run(activities.step, step)
    await env.run(activities.step, step)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 1
        assert await session.scalar(select(func.count()).select_from(ReportedRenewal)) == 1
        events = (await session.scalars(select(Event))).all()
    assert [event.name for event in events] == ["report.generated"]
    assert events[0].payload["url"] == f"https://portal.test/api/v1/reports/{first.report_id}"


async def test_business_failures_are_not_retried(activities: ReportActivities) -> None:
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            activities.generate, GenerateInput(kind="renewals", period="2099-01", format="csv", workflow_id="x")
        )
    assert raised.value.non_retryable
    with pytest.raises(ApplicationError) as unknown:
        await env.run(
            activities.generate, GenerateInput(kind="renewals", period="2026-03", format="xlsx", workflow_id="x")
        )
    assert unknown.value.non_retryable


async def test_the_period_of_a_scheduled_time_is_the_vendors_day(activities: ReportActivities) -> None:
    env = ActivityEnvironment()
    # 2026-02-28 23:30 UTC is 1 March in Berlin: day 1 runs, for February's renewals and for 1 March.
    at = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    renewals = await env.run(activities.period, PeriodInput(kind="renewals", day=1, at=at))
    active = await env.run(activities.period, PeriodInput(kind="active-subscriptions", day=1, at=at))
    assert (renewals.period, active.period) == ("2026-02", "2026-03-01")
    off_day = await env.run(activities.period, PeriodInput(kind="renewals", day=2, at=at))
    assert off_day.period is None
