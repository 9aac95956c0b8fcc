"""Recorded report runs racing each other: one record per period, one set of billed and reversed rows.

The point is PostgreSQL's concurrent writers (SQLite has one writer at a time and passes trivially).
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Subscription, SubscriptionStatus, SubscriptionTerm
from tessera.reports.models import Report, ReportedRenewal
from tessera.reports.periods import renewal_month
from tessera.reports.recording import record_report
from tests.report_world import ZONE, add_subscription, at, build_report_world, rewrite_lines, utc

CONFIG_REPORTS = Path(__file__).resolve().parents[2] / "config" / "reports"
NOW = utc(2030, 1, 1)
RUNS = 6


async def test_concurrent_runs_of_a_period_make_one_record_and_one_set_of_reversals(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        world = await build_report_world(session)
        subscriptions = [await add_subscription(session, world, "C1", date(2026, 2, 1), 2) for _ in range(20)]
        # Long second terms, so that April's revocations fall inside them.
        await session.execute(
            update(SubscriptionTerm).where(SubscriptionTerm.term_no == 2).values(ends_at=at(date(2027, 3, 1)))
        )
        await rewrite_lines(session)
    out = tmp_path / "reports"
    march, april = renewal_month("2026-03", ZONE), renewal_month("2026-04", ZONE)

    billed = await asyncio.wait_for(
        asyncio.gather(*(record_report(sessions, march, "csv", out, CONFIG_REPORTS, NOW) for _ in range(RUNS))),
        timeout=120,
    )
    assert len({run.report_id for run in billed}) == 1
    assert sum(run.created for run in billed) == 1
    assert {run.row_count for run in billed} == {20}
    assert len({run.sha256 for run in billed}) == 1

    async with sessions() as session, session.begin():
        await session.execute(
            update(Subscription)
            .where(Subscription.id.in_(subscriptions[:7]))
            .values(status=SubscriptionStatus.revoked, revoked_at=utc(2026, 4, 9))
        )
    reversed_runs = await asyncio.wait_for(
        asyncio.gather(*(record_report(sessions, april, "csv", out, CONFIG_REPORTS, NOW) for _ in range(RUNS))),
        timeout=120,
    )
    assert len({run.report_id for run in reversed_runs}) == 1
    assert {run.row_count for run in reversed_runs} == {7}

    async with sessions() as session:
        reports = await session.scalar(select(func.count()).select_from(Report))
        kinds = dict(
            (
                await session.execute(select(ReportedRenewal.row_kind, func.count()).group_by(ReportedRenewal.row_kind))
            ).all()
        )
        terms_reversed_twice = await session.scalar(
            select(func.count()).select_from(
                select(ReportedRenewal.subscription_term_id)
                .group_by(ReportedRenewal.subscription_term_id, ReportedRenewal.row_kind)
                .having(func.count() > 1)
                .subquery()
            )
        )
    assert reports == 2
    assert kinds == {"renewal": 20, "reversal": 7}
    assert terms_reversed_twice == 0
    written = sorted(path.name for path in out.iterdir())
    assert written == [
        "renewals-2026-03.csv",
        "renewals-2026-03.csv.manifest.json",
        "renewals-2026-04.csv",
        "renewals-2026-04.csv.manifest.json",
    ]


async def test_later_periods_recorded_at_once_bill_a_late_renewal_once(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        world = await build_report_world(session)
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
    out = tmp_path / "reports"
    await record_report(sessions, renewal_month("2026-03", ZONE), "csv", out, CONFIG_REPORTS, NOW)
    async with sessions() as session, session.begin():  # renewed on 28 March, written after the March run
        late = await add_subscription(session, world, "C3", date(2026, 2, 28), 2, reseller="R2")
    months = [renewal_month(f"2026-{month:02d}", ZONE) for month in (4, 5, 6, 7, 8, 9)]
    runs = await asyncio.wait_for(
        asyncio.gather(*(record_report(sessions, month, "csv", out, CONFIG_REPORTS, NOW) for month in months)),
        timeout=120,
    )
    # Whichever run marked it first bills it; every other file and total leaves it out.
    assert sorted(run.row_count for run in runs) == [0, 0, 0, 0, 0, 1]
    async with sessions() as session:
        marks = await session.scalar(
            select(func.count())
            .select_from(ReportedRenewal)
            .join(SubscriptionTerm, SubscriptionTerm.id == ReportedRenewal.subscription_term_id)
            .where(SubscriptionTerm.subscription_id == late)
        )
    assert marks == 1
    billed = next(run for run in runs if run.row_count)
    assert f"REN-{late}-2".encode() in (out / billed.file).read_bytes()
