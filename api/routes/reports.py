"""Billing reports: renewals and active subscriptions on demand (streamed), and the recorded scheduled runs."""

from __future__ import annotations

import base64
import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AppState, Cursor, Limit, Session, State
from api.deps import scoped as scoped_dependency
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.reports import CurrencyTotal, ReportRead
from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.principal import Principal
from tessera.reports import reach
from tessera.reports.formats import CONTENT_TYPES
from tessera.reports.models import Report
from tessera.reports.periods import (
    MAX_RENEWAL_DAYS,
    ReportKind,
    active_day,
    parse_day,
    renewal_period,
    within_range,
)
from tessera.reports.sellers import vendor_timezone
from tessera.reports.service import ReportRequest, new_manifest, prepare_format, stream_report

router = APIRouter(tags=["reports"])

ReportsReader = Annotated[Principal, Depends(scoped_dependency("reports:read"))]
FORMAT_HELP = "`csv` (default), `json`, `html`, or a template's name from `config/reports/`."


def _query_issues(error: InvalidInput) -> InvalidInput:
    """Issues raised below the API name bare parameters; here they are query parameters."""
    error.issues = [
        FieldIssue(f"query.{issue.field}", issue.message, issue.line, issue.column, issue.file)
        if not issue.field.startswith("query.")
        else issue
        for issue in error.issues
    ]
    return error


async def stream_response(state: AppState, request: ReportRequest) -> StreamingResponse:
    """The report as a download; a format that does not exist or does not compile is refused before a byte."""
    try:
        prepared = await prepare_format(state.settings.config_dir / "reports", request.format)
    except InvalidInput as error:
        raise _query_issues(error) from None
    manifest = new_manifest(request, prepared)
    return StreamingResponse(
        stream_report(state.session_factory, request, prepared, manifest),
        media_type=prepared.content_type,
        headers={"Content-Disposition": f'attachment; filename="{manifest.file}"', "Cache-Control": "no-store"},
    )


async def renewal_request(
    session: AsyncSession, caller: Principal, from_: date, to: date, report_format: str, reseller: uuid.UUID | None
) -> ReportRequest:
    """An on-demand renewal report within the caller's reach, its days checked (issues name `query.*`)."""
    for name, day in (("from", from_), ("to", to)):
        try:
            within_range(day)
        except ValueError as error:
            raise InvalidInput(f"{name}: {error}", issues=[FieldIssue(f"query.{name}", str(error))]) from None
    if from_ >= to:
        raise InvalidInput("`to` must come after `from`", issues=[FieldIssue("query.to", "must be after from")])
    if (to - from_).days > MAX_RENEWAL_DAYS:
        issue = FieldIssue("query.to", f"at most {MAX_RENEWAL_DAYS} days after from")
        raise InvalidInput(f"a renewal report covers at most {MAX_RENEWAL_DAYS} days", issues=[issue])
    scope = await reach.report_scope(session, caller, reseller)
    period = renewal_period(from_, to, await vendor_timezone(session))
    return ReportRequest(period, scope, report_format)


async def active_request(
    session: AsyncSession, caller: Principal, on: str, report_format: str, reseller: uuid.UUID | None
) -> ReportRequest:
    """An on-demand active-subscriptions report for day `on` (YYYY-MM-DD, a day past the month's end allowed)."""
    try:
        day = parse_day(on)
    except ValueError as error:
        raise InvalidInput(f"on: {error}", issues=[FieldIssue("query.on", str(error))]) from None
    scope = await reach.report_scope(session, caller, reseller)
    return ReportRequest(active_day(day, await vendor_timezone(session)), scope, report_format)


@router.get(
    "/reports/renewals",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}, "text/html": {}}}, **problems(404, 422)},
)
async def get_renewal_report(
    caller: ReportsReader,
    session: Session,
    state: State,
    from_: Annotated[date, Query(alias="from", description="First day (the vendor's time zone), included.")],
    to: Annotated[date, Query(description="The day after the last, excluded.")],
    format: Annotated[str, Query(description=FORMAT_HELP, max_length=64)] = "csv",  # noqa: A002
    reseller: Annotated[uuid.UUID | None, Query(description="Only this reseller's renewals.")] = None,
) -> StreamingResponse:
    """Renewals to invoice for `[from, to)`, with reversals of billed renewals revoked in the period (a preview:
    nothing is recorded)."""
    return await stream_response(state, await renewal_request(session, caller, from_, to, format, reseller))


@router.get(
    "/reports/active-subscriptions",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}, "text/html": {}}}, **problems(404, 422)},
)
async def get_active_subscriptions_report(
    caller: ReportsReader,
    session: Session,
    state: State,
    on: Annotated[
        str, Query(description="Day D as YYYY-MM-DD; a day past the month's end means its last day.", max_length=10)
    ],
    format: Annotated[str, Query(description=FORMAT_HELP, max_length=64)] = "csv",  # noqa: A002
    reseller: Annotated[uuid.UUID | None, Query(description="Only this reseller's subscriptions.")] = None,
) -> StreamingResponse:
    """Per reseller, the subscriptions active at local 00:00 of day D, with totals per currency."""
    return await stream_response(state, await active_request(session, caller, on, format, reseller))


def report_read(report: Report) -> ReportRead:
    return ReportRead(
        id=report.id,
        kind=report.kind,
        period=report.period,
        scope=report.scope,
        period_from=report.period_from,
        period_to=report.period_to,
        format=report.format,
        file_name=report.file_name,
        sha256=report.sha256,
        size=report.size,
        row_count=report.row_count,
        totals=[CurrencyTotal.model_validate(total) for total in report.totals],
        workflow_id=report.workflow_id,
        created_at=report.created_at,
    )


@router.get("/reports", responses=problems(404, 422))
async def list_reports(
    caller: ReportsReader,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    kind: Annotated[ReportKind | None, Query(description="Only reports of this kind.")] = None,
) -> Page[ReportRead]:
    """Recorded reports (the scheduled runs), newest first."""
    page = await reach.list_reports(session, caller, limit=limit, cursor=cursor, kind=kind.value if kind else None)
    return Page(items=[report_read(report) for report in page.items], next_cursor=page.next_cursor)


@router.get(
    "/reports/{report_id}",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}, "text/html": {}}}, **problems(404)},
)
async def get_report(caller: ReportsReader, session: Session, state: State, report_id: uuid.UUID) -> FileResponse:
    """Download a recorded report's file; `Repr-Digest` carries its SHA-256, as in its manifest."""
    return report_file(state, await reach.visible_report(session, caller, report_id))


def report_file(state: AppState, report: Report) -> FileResponse:
    """A recorded report's file as an attachment, with its SHA-256 (NotFound while it is not written)."""
    path = state.settings.resolved_reports_dir / report.file_name
    if report.sha256 is None or not path.is_file():
        raise NotFound(f"the file of report {report.id} is not written (yet)")
    digest = base64.b64encode(bytes.fromhex(report.sha256)).decode()
    extension = report.file_name.rsplit(".", 1)[-1]
    return FileResponse(
        path,
        media_type=CONTENT_TYPES.get(extension, "application/octet-stream"),
        filename=report.file_name,
        headers={"Repr-Digest": f"sha-256=:{digest}:", "X-Report-SHA256": report.sha256},
    )
