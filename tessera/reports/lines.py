"""Billing lines: each billable term's own report cells, written when the term becomes billable.

A first term and an ERP term are billable when written, a renewal when it becomes effective. The line is built
from the term as the database holds it (read back in one statement with its subscription, order and previous
term), by the same cell rules as the row path (`formats.csv_line`, `queries._money`), so PostgreSQL can write
a report's records from this one table (`tessera.reports.lines_sql`). Writing is an upsert on the term: a retried
renewal, or a line written again after a correction, leaves one line with the term's current cells.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tessera.models import (
    Order,
    Organization,
    OrganizationKind,
    Subscription,
    SubscriptionTerm,
    TermKind,
    utcnow,
)
from tessera.reports.formats import csv_line
from tessera.reports.models import BillingLine
from tessera.reports.queries import _money

BILLABLE_KINDS = (TermKind.first, TermKind.renewal, TermKind.erp)
"""Imported terms ran before the subscription came over and were billed elsewhere: they have no line."""

WRITE_BATCH = 1000


def billable(term: Any) -> Any:
    """Terms that bill: first and ERP terms, renewals once effective."""
    return and_(term.kind.in_(BILLABLE_KINDS), or_(term.kind != TermKind.renewal, term.renewed_at.is_not(None)))


def line_source() -> Select[Any]:
    """What a line is made of, one row per term (filter it by `SubscriptionTerm.id`)."""
    previous = aliased(SubscriptionTerm, name="previous")
    term: Any = SubscriptionTerm
    query: Select[Any] = (
        select(
            term.id.label("term_id"),
            term.subscription_id,
            term.term_no,
            term.kind,
            term.starts_at,
            term.ends_at,
            term.first_day,
            term.valid_through,
            term.quantity,
            term.unit_price,
            term.currency,
            term.amount,
            term.committed_at,
            term.renewed_at,
            Subscription.organization_id,
            Subscription.product_id,
            Subscription.reseller_id,
            Order.external_ref,
            previous.first_day.label("previous_first_day"),
            previous.valid_through.label("previous_valid_through"),
            _vendor_zone().label("zone"),
        )
        .join(Subscription, Subscription.id == term.subscription_id)
        .join(Order, Order.id == Subscription.order_id)
        .outerjoin(
            previous, and_(previous.subscription_id == term.subscription_id, previous.term_no == term.term_no - 1)
        )
        .where(billable(term))
    )
    return query


def _vendor_zone() -> Any:
    # The vendor is the one organization at the root of the tree (found by the parent index, not by a scan).
    return (
        select(func.coalesce(Organization.timezone, "UTC"))
        .where(Organization.parent_id.is_(None), Organization.kind == OrganizationKind.vendor)
        .limit(1)
        .scalar_subquery()
    )


def _cells(*values: str) -> str:
    """Cells as `csv_line` writes them (each defused and quoted on its own), without the line break."""
    return csv_line(values).removesuffix("\r\n")


def _day(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def _amount_text(value: Any) -> str | None:
    # The amount as PostgreSQL prints a numeric(18, 4), which is what the row path formats.
    return None if value is None else f"{value:.4f}"


def line_values(row: Mapping[str, Any], written_at: datetime) -> dict[str, Any]:
    """The line of one `line_source` row: its keys, and its cells in the order the reports write them."""
    subscription = str(uuid.UUID(str(row["subscription_id"])))
    term_no = str(row["term_no"])
    quantity = str(row["quantity"])
    first_day, valid_through = _day(row["first_day"]), _day(row["valid_through"])
    currency = row["currency"]
    zone = row["zone"] or "UTC"
    committed_at = row["committed_at"]
    reseller = row["reseller_id"]
    return {
        "term_id": row["term_id"],
        "subscription_id": row["subscription_id"],
        "term_no": row["term_no"],
        "kind": row["kind"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "organization_id": row["organization_id"],
        "product_id": row["product_id"],
        "reseller_id": row["reseller_id"],
        "currency": currency,
        "amount": row["amount"],
        "committed_at": committed_at,
        "written_at": written_at,
        "zone": zone,
        "renewal_head": f"REN-{subscription}-{term_no},renewal",
        "reseller_cell": "" if reseller is None else str(uuid.UUID(str(reseller))),
        "committed_on_cell": "" if committed_at is None else committed_at.astimezone(ZoneInfo(zone)).date().isoformat(),
        "subscription_cells": _cells(subscription, term_no),
        "renewal_cells": _cells(
            quantity, _day(row["previous_first_day"]), _day(row["previous_valid_through"]), first_day, valid_through
        ),
        "active_cells": _cells(quantity, first_day, valid_through),
        "first_day_cell": _cells(first_day),
        "price_cells": _cells(
            currency or "",
            _money(_amount_text(row["unit_price"]), currency),
            _money(_amount_text(row["amount"]), currency),
            row["external_ref"] or "",
        ),
    }


def upsert(dialect_name: str) -> Any:
    """INSERT … ON CONFLICT (term) DO UPDATE: one line per term, with the cells of the latest write. Executed
    with a list of `line_values`, so it is compiled once and sent in batches."""
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    table: Any = BillingLine.__table__
    statement = dialect.insert(table)  # the Core table: the ORM's bulk path would send one statement per line
    updated = {column.name: statement.excluded[column.name] for column in table.columns if column.name != "term_id"}
    return statement.on_conflict_do_update(index_elements=[table.c.term_id], set_=updated)


async def write_lines(session: AsyncSession, term_ids: Collection[uuid.UUID]) -> None:
    """Write (or rewrite) the lines of these terms, those that bill; flushes, never commits."""
    ids = list(term_ids)
    now = utcnow()
    await session.flush()
    dialect_name = session.get_bind().dialect.name
    for start in range(0, len(ids), WRITE_BATCH):
        chunk = ids[start : start + WRITE_BATCH]
        rows = (await session.execute(line_source().where(SubscriptionTerm.id.in_(chunk)))).mappings().all()
        if rows:
            await session.execute(upsert(dialect_name), [line_values(row, now) for row in rows])
