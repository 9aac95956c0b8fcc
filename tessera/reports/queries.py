"""The rows of both reports, straight from the database and streamed: prices from the terms' snapshots.

Renewals: one row per effective renewal whose term starts in the period, unless the subscription was revoked
before the period ended (then it is never billed); a renewal billed by a recorded report and revoked later is
credited by a reversal row in the renewal report of the period that holds the revocation.
Active subscriptions: every subscription whose term covers local 00:00 of day D, not revoked by then and not
pending, attributed to the reseller that sold it at that instant (see `reseller_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, Uuid, and_, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from tessera.catalog.service import format_amount
from tessera.models import (
    Order,
    Product,
    Subscription,
    SubscriptionStatus,
    SubscriptionTerm,
    TermKind,
)
from tessera.reports.models import BillingLine, Report, ReportedRenewal, ReportedRowKind
from tessera.reports.periods import Period, ReportKind
from tessera.reports.sellers import Organizations, Row, reseller_at

STREAM_BATCH = 2000

RENEWAL_COLUMNS = (
    "row_id",
    "row_type",
    "reseller_id",
    "reseller_erp_no",
    "reseller_name",
    "customer_id",
    "customer_erp_no",
    "customer_name",
    "subscription_id",
    "term_no",
    "product_code",
    "erp_material_no",
    "quantity",
    "previous_first_day",
    "previous_valid_through",
    "first_day",
    "valid_through",
    "committed_on",
    "effective_on",
    "currency",
    "unit_price",
    "net_amount",
    "external_ref",
)
ACTIVE_COLUMNS = (
    "row_id",
    "reseller_id",
    "reseller_erp_no",
    "reseller_name",
    "customer_id",
    "customer_erp_no",
    "customer_name",
    "subscription_id",
    "term_no",
    "product_code",
    "erp_material_no",
    "quantity",
    "first_day",
    "valid_through",
    "currency",
    "unit_price",
    "net_amount",
    "external_ref",
)
COLUMNS = {ReportKind.renewals: RENEWAL_COLUMNS, ReportKind.active_subscriptions: ACTIVE_COLUMNS}


@dataclass(frozen=True)
class Scope:
    """What a report covers: the whole vendor, or one reseller (`direct` rows have no reseller)."""

    reseller_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        return "all" if self.reseller_id is None else str(self.reseller_id)


def _text(column: Any) -> Any:
    """The column as the database writes it: ids, dates and amounts come back as text, which is most of what a
    report does with them, and skips building (then printing) a Python object per value."""
    return cast(column, String)


@lru_cache(maxsize=4096)
def _money(amount: str | None, currency: str | None, sign: int = 1) -> str:
    # Prices repeat across thousands of rows: each is formatted once.
    if amount is None:
        return ""
    value = Decimal(amount) * sign
    return format_amount(value, currency) if currency else str(value)


def _id(value: str | None) -> str:
    """An id as the API shows it (SQLite keeps UUIDs as 32 hex digits, PostgreSQL as dashed text)."""
    if value is None:
        return ""
    if len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value


def _local_day(instant: datetime | None, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).date().isoformat() if instant is not None else ""


async def _stream(session: AsyncSession, query: Select[Any]) -> AsyncIterator[Sequence[Any]]:
    """Rows in batches: one await per batch, not per row (per-row awaits cost more than the rows themselves)."""
    connection = await session.connection()  # Core rows: none of the ORM's per-row bookkeeping
    result = await connection.stream(query.execution_options(yield_per=STREAM_BATCH))
    async for batch in result.partitions(STREAM_BATCH):
        yield batch


# --- renewals --------------------------------------------------------------------------------------------------


def _renewal_select(reseller_instant: Any) -> tuple[Select[Any], Any, Any]:
    term: Any = aliased(SubscriptionTerm, name="term")
    previous = aliased(SubscriptionTerm, name="previous")
    reseller = reseller_at(Subscription.id, Subscription.reseller_id, reseller_instant(term))
    query = (
        select(
            term.id,
            _text(term.subscription_id),
            term.term_no,
            _text(term.first_day),
            _text(term.valid_through),
            term.committed_at,
            term.quantity,
            _text(term.unit_price),
            term.currency,
            _text(term.amount),
            _text(previous.first_day).label("previous_first_day"),
            _text(previous.valid_through).label("previous_valid_through"),
            _text(Subscription.organization_id),
            _text(reseller),
            Product.code.label("product_code"),
            Product.erp_material_no.label("erp_material_no"),
            Order.external_ref.label("external_ref"),
        )
        .join(Subscription, Subscription.id == term.subscription_id)
        .join(Order, Order.id == Subscription.order_id)
        .join(Product, Product.id == Subscription.product_id)
        .outerjoin(
            previous,
            and_(previous.subscription_id == term.subscription_id, previous.term_no == term.term_no - 1),
        )
        .order_by(term.subscription_id, term.term_no)
    )
    return query, term, reseller


LATE_MARGIN = timedelta(hours=1)
"""How long before a recorded run's claim a renewal written but not yet committed may still have been invisible to
it; renewals billed already are never billed again, so a generous margin costs nothing."""


async def late_after(reader: AsyncSession | AsyncConnection, period: Period) -> datetime | None:
    """Renewals whose billing line was written after this instant, and that started before `period`, were written
    too late for the latest recorded run of an earlier period: the renewal report of `period` bills them, unless a
    recorded run did. None before the first recorded run (what came before was never billed here)."""
    claimed = await reader.scalar(
        select(func.max(Report.created_at)).where(
            Report.kind == ReportKind.renewals.value,
            Report.scope == Scope().key,
            Report.period_from < period.first_day,
        )
    )
    return None if claimed is None else claimed - LATE_MARGIN


def billable_renewals(
    period: Period, late: datetime | None = None, report_id: uuid.UUID | None = None
) -> tuple[Select[Any], Any, Any]:
    """Effective renewals starting in the period (or, with `late`, written late for an earlier recorded run and
    not billed by another run than `report_id`) whose subscription was not revoked before the period ended."""
    query, term, reseller = _renewal_select(lambda t: t.starts_at)
    ends_at = period.ends_at
    when = and_(term.starts_at >= period.starts_at, term.starts_at < ends_at)
    if late is not None:
        written_late = select(BillingLine.term_id).where(
            BillingLine.kind == TermKind.renewal,
            BillingLine.written_at > late,
            BillingLine.starts_at < period.starts_at,
        )
        when = or_(when, and_(term.id.in_(written_late), ~billed(term.id, report_id)))
    query = query.where(
        term.kind == TermKind.renewal,
        term.renewed_at.is_not(None),
        when,
        or_(
            Subscription.revoked_at.is_(None),
            Subscription.revoked_at >= ends_at,
            Subscription.revoked_at >= term.ends_at,
        ),
    )
    return query, term, reseller


def billed(term_id: Any, except_report: uuid.UUID | None = None) -> Any:
    """The term's renewal was billed by a recorded run (other than `except_report`, whose file is being written)."""
    query = select(ReportedRenewal.id).where(
        ReportedRenewal.subscription_term_id == term_id, ReportedRenewal.row_kind == ReportedRowKind.renewal
    )
    if except_report is not None:
        query = query.where(ReportedRenewal.report_id != except_report)
    return query.exists()


def due_reversals(period: Period) -> tuple[Select[Any], Any, Any]:
    """Renewals billed by a recorded report whose subscription was revoked, during the term, in the period."""
    query, term, reseller = _renewal_select(lambda t: t.starts_at)
    query = query.where(
        term.kind == TermKind.renewal,
        Subscription.revoked_at >= period.starts_at,
        Subscription.revoked_at < period.ends_at,
        Subscription.revoked_at < term.ends_at,
        billed(term.id),
    )
    return query, term, reseller


def recorded(query: Select[Any], term: Any, report_id: uuid.UUID, row_kind: str) -> Select[Any]:
    """Only the rows a recorded report holds: what was billed stays billed when the file is written again."""
    marks = select(ReportedRenewal.subscription_term_id).where(
        ReportedRenewal.report_id == report_id, ReportedRenewal.row_kind == row_kind
    )
    return query.where(term.id.in_(marks))


def scoped(query: Select[Any], reseller: Any, scope: Scope) -> Select[Any]:
    if scope.reseller_id is None:
        return query
    return query.where(reseller == literal(scope.reseller_id, Uuid()))


async def renewal_rows(
    session: AsyncSession,
    period: Period,
    scope: Scope,
    organizations: Organizations,
    report_id: uuid.UUID | None = None,
) -> AsyncIterator[list[Row]]:
    """Billed renewals first, then reversals; each ordered by subscription and term."""
    zone = ZoneInfo(period.zone)
    late = await late_after(session, period)
    for row_type in (ReportedRowKind.renewal, ReportedRowKind.reversal):
        if row_type == ReportedRowKind.renewal:
            query, term, reseller = billable_renewals(period, late, report_id)
        else:
            query, term, reseller = due_reversals(period)
        if report_id is not None:
            query = recorded(query, term, report_id, row_type)
        sign = -1 if row_type == ReportedRowKind.reversal else 1
        prefix = "REV" if sign < 0 else "REN"
        async for batch in _stream(session, scoped(query, reseller, scope)):
            yield [_renewal_row(row, row_type, prefix, sign, organizations, zone) for row in batch]


def _renewal_row(row: Any, row_type: str, prefix: str, sign: int, organizations: Organizations, zone: ZoneInfo) -> Row:
    subscription = _id(row[1])
    first_day = row[3] or ""
    return (
        f"{prefix}-{subscription}-{row[2]}",
        row_type,
        *organizations.describe(_id(row[13]) or None),
        *organizations.describe(organizations.customer_of(_id(row[12]))),
        subscription,
        str(row[2]),
        row[14],
        row[15] or row[14],
        str(row[6] * sign),
        row[10] or "",
        row[11] or "",
        first_day,
        row[4] or "",
        _local_day(row[5], zone),
        first_day,
        row[8] or "",
        _money(row[7], row[8]),
        _money(row[9], row[8], sign),
        row[16] or "",
    )


# --- active subscriptions per reseller -----------------------------------------------------------------------------


def active_select(instant: datetime) -> tuple[Select[Any], Any, Any]:
    term: Any = aliased(SubscriptionTerm, name="term")
    reseller = reseller_at(Subscription.id, Subscription.reseller_id, instant)
    query = (
        select(
            _text(term.subscription_id),
            term.term_no,
            _text(term.first_day),
            _text(term.valid_through),
            term.quantity,
            _text(term.unit_price),
            term.currency,
            _text(term.amount),
            _text(Subscription.organization_id),
            _text(reseller),
            Product.code.label("product_code"),
            Product.erp_material_no.label("erp_material_no"),
            Order.external_ref.label("external_ref"),
        )
        .join(Subscription, Subscription.id == term.subscription_id)
        .join(Order, Order.id == Subscription.order_id)
        .join(Product, Product.id == Subscription.product_id)
        .where(
            # Imported terms ran before the subscription came over, and were billed elsewhere.
            term.kind.in_([TermKind.first, TermKind.renewal, TermKind.erp]),
            term.ends_at > instant,
            term.starts_at <= instant,
            or_(term.kind != TermKind.renewal, term.renewed_at.is_not(None)),
            or_(Subscription.revoked_at.is_(None), Subscription.revoked_at > instant),
            Subscription.status != SubscriptionStatus.pending,
        )
        .order_by(reseller.is_(None), reseller, term.subscription_id)
    )
    return query, term, reseller


async def active_rows(
    session: AsyncSession, period: Period, scope: Scope, organizations: Organizations
) -> AsyncIterator[list[Row]]:
    """Per reseller (direct sales last), every subscription active at local 00:00 of the day."""
    query, _term, reseller = active_select(period.starts_at)
    async for batch in _stream(session, scoped(query, reseller, scope)):
        yield [_active_row(row, period.month, organizations) for row in batch]


def _active_row(row: Any, month: str, organizations: Organizations) -> Row:
    subscription, reseller = _id(row[0]), _id(row[9]) or None
    return (
        f"ACT-{reseller or 'direct'}-{month}-{subscription}",
        *organizations.describe(reseller),
        *organizations.describe(organizations.customer_of(_id(row[8]))),
        subscription,
        str(row[1]),
        row[10],
        row[11] or row[10],
        str(row[4]),
        row[2] or "",
        row[3] or "",
        row[6] or "",
        _money(row[5], row[6]),
        _money(row[7], row[6]),
        row[12] or "",
    )
