"""Billed renewals and active subscriptions as CSV records written by PostgreSQL from the billing lines.

The same rows, in the same order, as `tessera.reports.queries` selects from the terms (tested byte for byte
against the row path), but read from one table whose rows already hold their term's cells: per row, PostgreSQL
only looks up who sold it (when its reseller ever changed), joins the organizations' and the product's cells
(computed once each, so names are as they are today) and glues a dozen texts. Reversals, rare by nature, keep
the terms' query (`csv_sql.renewal_lines`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Date, Select, and_, case, cast, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from tessera.models import Subscription, SubscriptionStatus, TermKind
from tessera.reports.csv_sql import PRODUCT, Cell, _lines, _text
from tessera.reports.csv_sql import _parties as csv_parties
from tessera.reports.models import BillingLine, ReportedRenewal, ReportedRowKind, ResellerChange
from tessera.reports.periods import Period
from tessera.reports.queries import Scope, billed
from tessera.reports.sellers import reseller_at


def _line() -> Any:
    return aliased(BillingLine, name="line")


def _scoped(query: Select[Any], reseller: Any, scope: Scope) -> Select[Any]:
    if scope.reseller_id is None:
        return query
    return query.where(reseller == literal(scope.reseller_id, BillingLine.reseller_id.type))


def _inner(query: Select[Any], line: Any, reseller: Any) -> Any:
    return (
        query.with_only_columns(
            reseller.label("reseller_id"),
            case((_changed_reseller(line), _text(reseller)), else_=line.reseller_cell).label("reseller_text"),
            line.organization_id,
            line.product_id,
            line.subscription_id,
            line.term_no,
            line.renewal_head,
            line.reseller_cell,
            line.zone,
            line.committed_on_cell,
            line.subscription_cells,
            line.renewal_cells,
            line.active_cells,
            line.first_day_cell,
            line.price_cells,
            line.committed_at,
            func.coalesce(line.currency, "").label("currency"),
            line.amount,
        )
        .offset(0)  # a fence: the reseller (a CASE over subqueries) computed once per row, not once per use
        .subquery("report_row")
    )


def _changed_reseller(line: Any) -> Any:
    return line.subscription_id.in_(select(ResellerChange.subscription_id))


def _parties(inner: Any) -> list[Cell]:
    """reseller id, ERP number, name, then the end customer's: six cells as three SQL values (the reseller's id
    as the line holds it, unless its subscription ever changed reseller)."""
    return [inner.c.reseller_text, *csv_parties(inner)[1:]]


def billed_renewals(
    period: Period, scope: Scope, report_id: uuid.UUID | None, late: datetime | None
) -> tuple[Select[Any], Any]:
    """Effective renewals starting in the period (and those written late, see `queries.late_after`), unless
    revoked before both the period's and the term's end."""
    line = _line()
    # The few subscriptions revoked by the period's end are hashed once; only their lines look at the revocation
    # again, against their own term's end (a per-line anti-join probed the subscriptions 100,000 times).
    revoked = select(Subscription.id).where(Subscription.revoked_at < period.ends_at)
    revoked_before = and_(
        line.subscription_id.in_(revoked),
        exists().where(
            Subscription.id == line.subscription_id,
            Subscription.revoked_at < period.ends_at,
            Subscription.revoked_at < line.ends_at,
        ),
    )
    when = and_(line.starts_at >= period.starts_at, line.starts_at < period.ends_at)
    if late is not None:
        written_late = and_(line.starts_at < period.starts_at, line.written_at > late, ~billed(line.term_id, report_id))
        when = or_(when, written_late)
    query = select(line).where(line.kind == TermKind.renewal, when, ~revoked_before)
    if report_id is not None:
        marks = select(ReportedRenewal.subscription_term_id).where(
            ReportedRenewal.report_id == report_id, ReportedRenewal.row_kind == ReportedRowKind.renewal
        )
        query = query.where(line.term_id.in_(marks))
    reseller = reseller_at(line.subscription_id, line.reseller_id, line.starts_at)
    return _scoped(query, reseller, scope), line


def renewal_records(period: Period, scope: Scope, report_id: uuid.UUID | None, late: datetime | None) -> Select[Any]:
    query, line = billed_renewals(period, scope, report_id, late)
    inner = _inner(query, line, reseller_at(line.subscription_id, line.reseller_id, line.starts_at))
    row = inner.c
    # Written in the vendor's zone of the day; should the vendor move, the day is worked out again per row.
    committed_on = case(
        (row.zone == period.zone, row.committed_on_cell),
        else_=_text(cast(func.timezone(period.zone, row.committed_at), Date)),
    )
    cells = [
        row.renewal_head,
        *_parties(inner),
        row.subscription_cells,
        func.coalesce(PRODUCT.c.cells, ","),
        row.renewal_cells,
        committed_on,
        row.first_day_cell,
        row.price_cells,
    ]
    return _lines(inner, cells, [row.subscription_id, row.term_no]).add_columns(row.currency, row.amount)


def active_lines_at(instant: datetime, scope: Scope) -> tuple[Select[Any], Any, Any]:
    """Lines whose term covers the instant, of subscriptions neither pending nor revoked by then."""
    line = _line()
    excluded = select(Subscription.id).where(
        or_(Subscription.status == SubscriptionStatus.pending, Subscription.revoked_at <= instant)
    )  # few, hashed once
    query = select(line).where(line.ends_at > instant, line.starts_at <= instant, line.subscription_id.not_in(excluded))
    reseller = reseller_at(line.subscription_id, line.reseller_id, instant)
    return _scoped(query, reseller, scope), line, reseller


def active_records(period: Period, scope: Scope) -> Select[Any]:
    query, line, reseller = active_lines_at(period.starts_at, scope)
    inner = _inner(query, line, reseller)
    row = inner.c
    cells = [
        "ACT-"
        + case((row.reseller_text == "", "direct"), else_=row.reseller_text)
        + f"-{period.month}-"
        + func.split_part(row.subscription_cells, ",", 1),
        *_parties(inner),
        row.subscription_cells,
        func.coalesce(PRODUCT.c.cells, ","),
        row.active_cells,
        row.price_cells,
    ]
    # Direct sales last, as the row path orders them; NULLS LAST rather than a leading `IS NULL` key, so the sort
    # compares abbreviated keys of the reseller's id instead of whole rows behind a flag that is almost always false.
    order = [row.reseller_id.asc().nulls_last(), row.subscription_id]
    return _lines(inner, cells, order).add_columns(row.currency, row.amount)
