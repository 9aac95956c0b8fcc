"""Billing reports: the recorded runs with their files, and a report produced on demand as the API produces it.

Reach is the API's (`tessera.reports.reach`): vendor administrators everything, a reseller's administrators their
reseller's rows; anyone else gets an empty list and a 404 for a report. The download is the API's stream.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import AppState, Session, State
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, render
from api.portal.routing import PortalRoute
from api.routes.reports import active_request, renewal_request, report_file, stream_response
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import Organization, OrganizationKind, utcnow
from tessera.reports import reach
from tessera.reports.periods import ReportKind
from tessera.reports.templates import format_names
from tessera.subscriptions.calendar import add_months

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
FIELDS = ("kind", "from", "to", "on", "format", "reseller")


async def _resellers(session: AsyncSession, page: Page) -> list[tuple[uuid.UUID, str]]:
    """The resellers whose reports the viewer may produce (the vendor's administrators: every one)."""
    assert page.viewer is not None
    principal = page.viewer.principal
    query = select(Organization.id, Organization.name).where(Organization.kind == OrganizationKind.reseller)
    if not principal.vendor_admin:
        query = query.where(Organization.id.in_(await reach.administered_resellers(session, principal)))
    return [(row[0], row[1]) for row in (await session.execute(query.order_by(Organization.name))).all()]


def _defaults() -> dict[str, str]:
    this_month = utcnow().date().replace(day=1)
    return {
        "kind": ReportKind.renewals.value,
        "from": add_months(this_month, -1).isoformat(),
        "to": this_month.isoformat(),
        "on": (this_month - timedelta(days=1)).isoformat(),
        "format": "csv",
        "reseller": "",
    }


async def _reports_page(
    page: Page,
    session: AsyncSession,
    state: AppState,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    cursor: str | None = None,
) -> Response:
    assert page.viewer is not None
    principal = page.viewer.principal
    recorded = await reach.list_reports(session, principal, limit=50, cursor=cursor)
    resellers = await _resellers(session, page)
    return render(
        page,
        "portal/reports/list.html",
        status=status,
        nav="reports",
        reports=recorded.items,
        next_cursor=recorded.next_cursor,
        may_produce=principal.vendor_admin or bool(resellers),
        vendor_admin=principal.vendor_admin,
        resellers=resellers,
        formats=format_names(state.settings.config_dir / "reports"),
        values=values or _defaults(),
        errors=errors or {},
    )


@router.get("/reports")
async def list_reports(page: SignedInPage, session: Session, state: State, cursor: str | None = None) -> Response:
    """Recorded reports, and the form to produce one."""
    return await _reports_page(page, session, state, cursor=cursor)


@router.get("/reports/{report_id}/download")
async def download_report(page: SignedInPage, session: Session, state: State, report_id: uuid.UUID) -> Response:
    """A recorded report's file, as the API sends it."""
    assert page.viewer is not None
    return report_file(state, await reach.visible_report(session, page.viewer.principal, report_id))


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: give a date", issues=[FieldIssue(name, "give a date as YYYY-MM-DD")]) from None


def _reseller(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("no such reseller", issues=[FieldIssue("reseller", "choose a reseller")]) from None


def _form_values(form: FormData) -> dict[str, str]:
    return {name: text(form, name, max_length=64).strip() for name in FIELDS}


def _unprefixed(issues: list[FieldIssue]) -> list[FieldIssue]:
    """The API names query parameters (`query.to`); the form's fields are the same names without the prefix."""
    return [FieldIssue(issue.field.removeprefix("query."), issue.message) for issue in issues]


@router.post("/reports")
async def produce_report(page: SignedInPage, form: Form, session: Session, state: State) -> Response:
    """Produce a report on demand (a preview: nothing is recorded) and download it."""
    assert page.viewer is not None
    values: dict[str, Any] = {}
    try:
        values = _form_values(form)
        report_format = values["format"] or "csv"
        reseller = _reseller(values["reseller"])
        if values["kind"] == ReportKind.renewals.value:
            request = await renewal_request(
                session,
                page.viewer.principal,
                _day(values["from"], "from"),
                _day(values["to"], "to"),
                report_format,
                reseller,
            )
        elif values["kind"] == ReportKind.active_subscriptions.value:
            request = await active_request(session, page.viewer.principal, values["on"], report_format, reseller)
        else:
            raise InvalidInput("choose a report", issues=[FieldIssue("kind", "choose a report")])
        return await stream_response(state, request)
    except InvalidInput as error:
        await session.rollback()
        shown = {**_defaults(), **values}
        errors = field_errors(_unprefixed(list(error.issues)) or [FieldIssue("kind", error.detail)])
        return await _reports_page(page, session, state, status=422, values=shown, errors=errors)
