"""Report activities: generate and record a report, the period of a scheduled run, the report's outbox rows."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import business_failures
from tessera.db import unit_of_work
from tessera.email.locales import DEFAULT_LOCALE, translated_name
from tessera.email.recipients import by_language
from tessera.models import EventKind, Membership, Organization, OrganizationKind, Role, User, utcnow
from tessera.notifications import render_source, write_event
from tessera.reports.models import Report
from tessera.reports.periods import ReportKind, active_day, parse_day, renewal_month, scheduled_period
from tessera.reports.recording import record_report
from tessera.reports.sellers import vendor_timezone
from tessera.subscriptions.plans import local_date
from workflows.report_models import (
    CurrencyTotal,
    GenerateInput,
    GenerateResult,
    PeriodInput,
    PeriodResult,
    ReportStepInput,
)


class ReportActivities:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        reports_dir: Path,
        formats_dir: Path,
        portal_url: str,
    ) -> None:
        self._sessions = session_factory
        self._reports_dir = reports_dir
        self._formats_dir = formats_dir
        self._portal_url = portal_url.rstrip("/")

    @activity.defn(name="reports.generate")
    async def generate(self, request: GenerateInput) -> GenerateResult:
        """Record the period's report and write its file; key: kind + period (unique), so a retry finds it."""
        async with business_failures():
            async with self._sessions() as session:
                zone = await vendor_timezone(session)
            if request.kind == ReportKind.renewals:
                period = renewal_month(request.period, zone)
            else:
                period = active_day(parse_day(request.period), zone)
            recorded = await record_report(
                self._sessions, period, request.format, self._reports_dir, self._formats_dir, utcnow(),
                workflow_id=request.workflow_id,
            )  # fmt: skip
        return GenerateResult(
            report_id=str(recorded.report_id),
            kind=recorded.kind,
            period=recorded.period,
            file=recorded.file,
            sha256=recorded.sha256,
            row_count=recorded.row_count,
            totals=[CurrencyTotal.model_validate(total) for total in recorded.totals],
            created=recorded.created,
        )

    @activity.defn(name="reports.period")
    async def period(self, request: PeriodInput) -> PeriodResult:
        """The period a scheduled run at `at` reports, in the vendor's time zone (a read: nothing to repeat)."""
        async with self._sessions() as session:
            zone = await vendor_timezone(session)
        found = scheduled_period(ReportKind(request.kind), local_date(request.at, zone), request.day, zone)
        return PeriodResult(period=found.key if found else None)

    @activity.defn(name="reports.step")
    async def step(self, request: ReportStepInput) -> None:
        """A report's notification or event into the outbox; key: the step's key (unique)."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            report = await session.get(Report, uuid.UUID(request.report_id))
            if report is None:
                raise ApplicationError(f"no report {request.report_id}", non_retryable=True)
            vendor = await session.scalar(select(Organization.id).where(Organization.kind == OrganizationKind.vendor))
            details = self._details(report)
            if request.kind == "webhook":
                assert request.event is not None
                await write_event(session, key=request.key, kind=EventKind.webhook, name=request.event,
                                  organization_id=vendor, order_id=None, payload=details)  # fmt: skip
                return
            await self._notify(session, request, vendor, details)

    def _details(self, report: Report) -> dict[str, Any]:
        return {
            "report_id": str(report.id),
            "kind": report.kind,
            "period": report.period,
            "format": report.format,
            "file": report.file_name,
            "sha256": report.sha256 or "",
            "row_count": report.row_count or 0,
            "totals": list(report.totals),
            "url": f"{self._portal_url}/api/v1/reports/{report.id}",
        }

    async def _notify(
        self, session: AsyncSession, request: ReportStepInput, vendor: uuid.UUID | None, details: dict[str, Any]
    ) -> None:
        assert request.template is not None
        assert request.source is not None
        recipients = await self._recipients(session, vendor, request.to)
        variables = {"portal_url": self._portal_url, "report": details}
        if vendor is None or not recipients:
            return
        for locale, group in (await by_language(session, vendor, recipients, list(request.translations))).items():
            name = translated_name(locale, request.template) if locale is not None else request.template
            source = request.translations[locale] if locale is not None else request.source
            try:
                subject, body = render_source(name, source, variables)
            except TemplateError as error:
                raise ApplicationError(f"template {name!r} does not render: {error}", non_retryable=True) from None
            await write_event(
                session,
                key=f"{request.key}:{locale}" if locale is not None else request.key,
                kind=EventKind.notification,
                name=request.template,
                organization_id=vendor,
                order_id=None,
                recipients=group,
                subject=subject,
                body=body,
                payload={"locale": locale or DEFAULT_LOCALE, "report_id": details["report_id"]},
            )

    async def _recipients(self, session: AsyncSession, vendor: uuid.UUID | None, to: list[str]) -> list[str]:
        """E-mail addresses as written, and the vendor's administrators; a vendor-wide report has no group or
        reseller of its own, so `group_admins`, `reseller_admins` and `requester` name nobody here."""
        emails = {recipient for recipient in to if "@" in recipient}
        if "vendor_admins" in to and vendor is not None:
            query = select(User.email).join(Membership, Membership.user_id == User.id)
            query = query.where(Membership.organization_id == vendor, Membership.role == Role.admin)
            emails |= set((await session.scalars(query)).all())
        return sorted(emails)

    def all(self) -> list[Any]:
        return [self.generate, self.period, self.step]
