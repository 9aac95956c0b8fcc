"""Recorded runs: which renewals a report billed or reversed, so that a revocation after billing is credited
once and only once, and writing the file again gives the same bytes.

One record per kind, period and scope (a unique key): of two runs of one period at once, the second waits for
the first's insert, fails on the key, and takes the first's record and rows. Only closed periods are recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.db import unit_of_work
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import new_id
from tessera.reports.models import Report, ReportedRenewal, ReportedRowKind
from tessera.reports.periods import Period, ReportKind
from tessera.reports.queries import Scope, billable_renewals, due_reversals, late_after
from tessera.reports.service import Manifest, ReportRequest, file_name, prepare_format, write_report

MARK_BATCH = 1000


@dataclass(frozen=True)
class RecordedReport:
    report_id: uuid.UUID
    kind: str
    period: str
    file: str
    sha256: str
    row_count: int
    totals: list[dict[str, Any]]
    created: bool
    """False when the period had been recorded before: this run only found it."""


def _insert(session: AsyncSession) -> Any:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert


async def _mark(session: AsyncSession, report_id: uuid.UUID, period: Period) -> None:
    """Record the renewals this report bills and the reversals it credits (each term at most once per kind)."""
    insert = _insert(session)
    late = await late_after(session, period)
    for row_kind, (query, term, _reseller) in (
        (ReportedRowKind.renewal, billable_renewals(period, late)),
        (ReportedRowKind.reversal, due_reversals(period)),
    ):
        sign = -1 if row_kind == ReportedRowKind.reversal else 1
        marks = query.with_only_columns(term.id, term.amount, term.currency)
        batch: list[dict[str, Any]] = []
        for row in (await session.execute(marks)).all():
            amount = None if row[1] is None else row[1] * sign
            batch.append({"id": new_id(), "report_id": report_id, "subscription_term_id": row[0],
                          "row_kind": row_kind, "amount": amount, "currency": row[2]})  # fmt: skip
            if len(batch) >= MARK_BATCH:
                await session.execute(insert(ReportedRenewal).values(batch).on_conflict_do_nothing())
                batch = []
        if batch:
            await session.execute(insert(ReportedRenewal).values(batch).on_conflict_do_nothing())


def check_closed(period: Period, now: datetime) -> None:
    closes = period.ends_at if period.kind == ReportKind.renewals else period.starts_at
    if closes > now:
        name = "to" if period.kind == ReportKind.renewals else "on"
        raise InvalidInput(
            f"the period {period.key} has not ended yet; only ended periods are recorded",
            issues=[FieldIssue(name, f"not before {closes.isoformat()}")],
        )


async def _claim(
    sessions: async_sessionmaker[AsyncSession],
    period: Period,
    format_name: str,
    extension: str,
    workflow_id: str | None,
) -> tuple[uuid.UUID, bool]:
    """The report's record, written now with its rows, or the one an earlier or concurrent run wrote."""
    scope = Scope()
    try:
        async with unit_of_work(sessions) as session:
            report = Report(
                kind=period.kind.value,
                period=period.key,
                scope=scope.key,
                period_from=period.first_day,
                period_to=period.end_day,
                format=format_name,
                file_name=file_name(ReportRequest(period, scope, format_name), extension),
                totals=[],
                workflow_id=workflow_id,
            )
            session.add(report)
            await session.flush()  # a concurrent run of the period waits here, then fails on the unique key
            if period.kind == ReportKind.renewals:
                await _mark(session, report.id, period)
            return report.id, True
    except IntegrityError:
        async with sessions() as session:
            existing = await session.scalar(
                select(Report.id).where(
                    Report.kind == period.kind.value, Report.period == period.key, Report.scope == scope.key
                )
            )
        if existing is None:
            raise
        return existing, False


async def record_report(
    sessions: async_sessionmaker[AsyncSession],
    period: Period,
    format_name: str,
    reports_dir: Path,
    config_reports_dir: Path,
    now: datetime,
    workflow_id: str | None = None,
) -> RecordedReport:
    """Record the period's report for the whole vendor and write its file; a second run finds the first's."""
    check_closed(period, now)
    prepared = await prepare_format(config_reports_dir, format_name)
    report_id, created = await _claim(sessions, period, format_name, prepared.extension, workflow_id)
    async with sessions() as session:
        report = await session.get(Report, report_id)
        assert report is not None
        path = reports_dir / report.file_name
        if report.sha256 and path.is_file():
            return _result(report, created)
        if report.format != format_name:  # recorded first in another format: the record decides
            prepared = await prepare_format(config_reports_dir, report.format)
    request = ReportRequest(period, Scope(), report.format, report_id)
    manifest: Manifest = await write_report(sessions, request, prepared, path)
    async with unit_of_work(sessions) as session:
        stored = await session.get(Report, report_id)
        assert stored is not None
        stored.sha256, stored.size = manifest.sha256, manifest.size
        stored.row_count, stored.totals = manifest.row_count, manifest.totals
        await session.flush()
        return _result(stored, created)


def _result(report: Report, created: bool) -> RecordedReport:
    return RecordedReport(
        report_id=report.id,
        kind=report.kind,
        period=report.period,
        file=report.file_name,
        sha256=report.sha256 or "",
        row_count=report.row_count or 0,
        totals=list(report.totals),
        created=created,
    )
