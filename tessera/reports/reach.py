"""Who may read which report: vendor administrators all of them, a reseller's administrators their reseller's
only; everyone else gets a 404, as if reports did not exist."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import Organization, OrganizationKind
from tessera.pagination import PageOf, after_instant, page_from
from tessera.principal import Principal
from tessera.reports.models import Report
from tessera.reports.queries import Scope


async def administered_resellers(session: AsyncSession, principal: Principal) -> list[uuid.UUID]:
    if not principal.admin_of:
        return []
    query = select(Organization.id).where(
        Organization.id.in_(principal.admin_of), Organization.kind == OrganizationKind.reseller
    )
    return sorted((await session.scalars(query)).all())


async def report_scope(session: AsyncSession, principal: Principal, reseller: uuid.UUID | None) -> Scope:
    """The scope a caller's on-demand report covers: `reseller` if given and within reach."""
    if principal.vendor_admin:
        if reseller is not None:
            kind = await session.scalar(select(Organization.kind).where(Organization.id == reseller))
            if kind != OrganizationKind.reseller:
                raise NotFound(f"no reseller {reseller}")
        return Scope(reseller)
    own = await administered_resellers(session, principal)
    if not own:
        raise NotFound("no such report")
    if reseller is not None:
        if reseller not in own:
            raise NotFound(f"no reseller {reseller}")
        return Scope(reseller)
    if len(own) > 1:
        raise InvalidInput(
            "you administer several resellers: name one",
            issues=[FieldIssue("query.reseller", f"one of {', '.join(str(r) for r in own)}")],
        )
    return Scope(own[0])


async def _visible_scopes(session: AsyncSession, principal: Principal) -> list[str] | None:
    """None: every scope (vendor administrators); else the reseller scopes the caller administers (often none:
    the list is then empty, like every list of things out of reach, and each report a 404)."""
    if principal.vendor_admin:
        return None
    return [str(reseller) for reseller in await administered_resellers(session, principal)]


async def list_reports(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None, kind: str | None = None
) -> PageOf[Report]:
    """Recorded reports, newest first."""
    scopes = await _visible_scopes(session, principal)
    query = select(Report).order_by(Report.created_at.desc(), Report.id.desc())
    if scopes is not None:
        query = query.where(Report.scope.in_(scopes))
    if kind is not None:
        query = query.where(Report.kind == kind)
    after = after_instant(cursor, "reports")
    if after is not None:
        at, last = after
        query = query.where(or_(Report.created_at < at, and_(Report.created_at == at, Report.id < last)))
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda report: (report.created_at, report.id), scope="reports")


async def visible_report(session: AsyncSession, principal: Principal, report_id: uuid.UUID) -> Report:
    scopes = await _visible_scopes(session, principal)
    report = await session.get(Report, report_id)
    if report is None or (scopes is not None and report.scope not in scopes):
        raise NotFound(f"no report {report_id}")
    return report
