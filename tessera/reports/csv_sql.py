"""CSV reports written by PostgreSQL itself: each record is one text value built in SQL (cells quoted and
defused exactly as `tessera.reports.formats` does it), streamed out in batches.

Reading 100,000 rows into Python objects and writing them again cost ~50 µs a row; letting the database print
them leaves Python only the bytes to pass on. The same rows, order and bytes as the row path (tested byte for
byte); totals come from an aggregate over the same rows in the same snapshot (the transaction is REPEATABLE READ).
JSON, HTML, the templates and SQLite keep the row path.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Select, String, and_, case, cast, func, literal, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from tessera.currency import MINOR_UNITS
from tessera.models import Organization, OrganizationKind, Product, Subscription
from tessera.reports.formats import NUMBER_PATTERN, Heading, Totals, csv_line
from tessera.reports.models import ReportedRowKind
from tessera.reports.periods import Period, ReportKind
from tessera.reports.queries import (
    Scope,
    due_reversals,
    late_after,
    recorded,
    scoped,
)

RECORD_BATCH = 5000

Cell = Any
"""A text-valued SQL expression: one CSV cell."""

_QUOTE_WHEN = '[",\r\n]'  # what makes the csv module quote a cell (delimiter, quote, line breaks)
_DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r", "'")


def _text(value: Any) -> Cell:
    return func.coalesce(cast(value, String), "")


def quoted(cell: Cell) -> Cell:
    """A cell as the csv module writes it (QUOTE_MINIMAL): in double quotes, doubled inside, only when needed."""
    return case((cell.regexp_match(_QUOTE_WHEN), '"' + func.replace(cell, '"', '""') + '"'), else_=cell)


def defused(cell: Cell) -> Cell:
    """`formats.defuse` in SQL: a leading apostrophe on a cell a spreadsheet would run, numbers untouched."""
    dangerous = and_(func.left(cell, 1).in_(_DANGEROUS_FIRST), not_(cell.regexp_match(NUMBER_PATTERN)))
    return case((dangerous, "'" + cell), else_=cell)


def free_text(value: Any) -> Cell:
    """Text people typed: defused, then quoted."""
    return quoted(defused(_text(value)))


def _minor_unit(currency: Any) -> Any:
    unusual = {code: places for code, places in MINOR_UNITS.items() if places != 2}
    return case(unusual, value=currency, else_=2)


def _formatted(amount: Any, currency: Any) -> Cell:
    """`format_amount`: at least the currency's minor unit, more only where the amount has it; no currency,
    the amount as stored."""
    places = func.greatest(_minor_unit(currency), func.scale(func.trim_scale(amount)))
    return case((currency.is_(None), cast(amount, String)), else_=cast(func.round(amount, places), String))


def money(amount: Any, currency: Any, sign: int = 1) -> Cell:
    """An amount as the row path prints it, negated for reversals the way Decimal does (0 becomes -0.00)."""
    if sign > 0:
        text = _formatted(amount, currency)
    else:
        text = case((amount >= 0, "-" + _formatted(amount, currency)), else_=_formatted(-amount, currency))
    return func.coalesce(text, "")


def record(cells: Sequence[Cell]) -> Cell:
    """One CSV record, CRLF-terminated: a single `concat` (a chain of `||` would copy the line once per cell)."""
    parts: list[Cell] = []
    for cell in cells:
        parts += [cell, ","]
    parts[-1] = "\r\n"
    return func.concat(*parts)


def _end_customers() -> Any:
    """Each organization's end customer, as `Organizations.customer_of` finds it: the nearest customer at or
    above it (climbing stops at the first customer)."""
    node = aliased(Organization, name="node")
    ancestry = select(
        Organization.id.label("organization_id"),
        Organization.id.label("node_id"),
        Organization.kind.label("kind"),
        Organization.parent_id.label("parent_id"),
    ).cte("ancestry", recursive=True)
    climbed = ancestry.union_all(
        select(ancestry.c.organization_id, node.id, node.kind, node.parent_id).join(
            node, and_(node.id == ancestry.c.parent_id, ancestry.c.kind != OrganizationKind.customer)
        )
    )
    return (
        select(climbed.c.organization_id, climbed.c.node_id.label("customer_id"))
        .where(climbed.c.kind == OrganizationKind.customer)
        .subquery("end_customer")
    )


def _described(organization: Any) -> Cell:
    """An organization's ERP number and name cells (`Organizations.describe` without the id)."""
    return free_text(organization.erp_customer_no) + "," + free_text(organization.name)


def _seller_cells() -> Any:
    """Per organization, its ERP number and name as CSV cells: computed once per organization, not per row."""
    return select(Organization.id, _described(Organization).label("cells")).subquery("seller")


def _customer_cells() -> Any:
    """Per ordering organization, its end customer's id, ERP number and name as CSV cells (the organization
    itself when no customer is at or above it)."""
    end = _end_customers()
    customer = aliased(Organization, name="customer")
    customer_id = func.coalesce(end.c.customer_id, Organization.id)
    cells = _text(customer_id) + "," + func.coalesce(_described(customer), ",")
    return (
        select(Organization.id, cells.label("cells"))
        .outerjoin(end, end.c.organization_id == Organization.id)
        .outerjoin(customer, customer.id == customer_id)
        .subquery("end_customer_cells")
    )


def _product_cells() -> Any:
    code = Product.code
    cells = free_text(code) + "," + free_text(func.coalesce(Product.erp_material_no, code))
    return select(Product.id, cells.label("cells")).subquery("product_cells")


def _lines(inner: Any, cells: list[Cell], order_by: list[Any]) -> Select[Any]:
    """The records of the rows in `inner` (a subquery of the report's own query), joined to the per-organization
    and per-product cells by plain ids, in the report's order."""
    return (
        select(record(cells))
        .select_from(inner)
        .outerjoin(SELLER, SELLER.c.id == inner.c.reseller_id)
        .outerjoin(CUSTOMER, CUSTOMER.c.id == inner.c.organization_id)
        .outerjoin(PRODUCT, PRODUCT.c.id == inner.c.product_id)
        .order_by(*order_by)
    )


def _parties(inner: Any) -> list[Cell]:
    """reseller id, ERP number, name, then the end customer's: six cells as three SQL values."""
    return [
        _text(inner.c.reseller_id),
        func.coalesce(SELLER.c.cells, ","),
        func.coalesce(CUSTOMER.c.cells, _text(inner.c.organization_id) + ",,"),
    ]


def _row_columns(query: Select[Any], term: Any, reseller: Any, *extra: Any) -> Any:
    return (
        query.with_only_columns(
            reseller.label("reseller_id"),
            Subscription.organization_id.label("organization_id"),
            Subscription.product_id.label("product_id"),
            term.subscription_id.label("subscription_id"),
            term.term_no.label("term_no"),
            term.quantity.label("quantity"),
            term.first_day.label("first_day"),
            term.valid_through.label("valid_through"),
            term.currency.label("currency"),
            term.unit_price.label("unit_price"),
            term.amount.label("amount"),
            query.selected_columns.external_ref,
            *extra,
            maintain_column_froms=False,
        )
        .order_by(None)
        .offset(0)  # a fence: the reseller (a CASE over subqueries) computed once per row, not once per use
        .subquery("report_row")
    )


def renewal_lines(query: Select[Any], term: Any, reseller: Any, row_type: str, zone: str) -> Select[Any]:
    """The renewal (or reversal) rows of `query` as CSV records, in its order (subscription, term)."""
    sign = -1 if row_type == ReportedRowKind.reversal else 1
    prefix = "REV" if sign < 0 else "REN"
    columns = query.selected_columns
    inner = _row_columns(
        query,
        term,
        reseller,
        columns.previous_first_day,
        columns.previous_valid_through,
        term.committed_at.label("committed_at"),
    )
    row = inner.c
    subscription = _text(row.subscription_id)
    first_day = _text(row.first_day)
    cells = [
        f"{prefix}-" + subscription + "-" + _text(row.term_no),
        literal(row_type, String),
        *_parties(inner),
        subscription,
        _text(row.term_no),
        func.coalesce(PRODUCT.c.cells, ","),
        _text(row.quantity * sign),
        _text(row.previous_first_day),
        _text(row.previous_valid_through),
        first_day,
        _text(row.valid_through),
        _text(cast(func.timezone(zone, row.committed_at), Date)),
        first_day,
        quoted(_text(row.currency)),
        money(row.unit_price, row.currency),
        money(row.amount, row.currency, sign),
        free_text(row.external_ref),
    ]
    return _lines(inner, cells, [row.subscription_id, row.term_no])


SELLER = _seller_cells()
CUSTOMER = _customer_cells()
PRODUCT = _product_cells()


def _sums(query: Select[Any], term: Any, sign: int) -> Select[Any]:
    """Rows and net amount per currency of `query`: what `Totals` counts while the rows go by."""
    currency = func.coalesce(term.currency, "")
    amount = func.sum(term.amount * sign)
    return query.with_only_columns(currency, func.count(), amount).group_by(currency).order_by(None)


Part = tuple[Select[Any], Select[Any] | None]
"""A part of the file: its records, and the statement of its sums — or None when the records carry their
currency and amount, counted as they stream by (one pass over the rows instead of two)."""


def statements(period: Period, scope: Scope, report_id: uuid.UUID | None, late: datetime | None = None) -> list[Part]:
    """The report's parts in file order: renewals then reversals, or the active rows.

    Billed renewals and active rows come from the billing lines (`lines_sql`), reversals from the terms."""
    from tessera.reports import lines_sql  # it builds on this module's cells

    if period.kind == ReportKind.active_subscriptions:
        return [(lines_sql.active_records(period, scope), None)]
    parts: list[Part] = [(lines_sql.renewal_records(period, scope, report_id, late), None)]
    query, term, reseller = due_reversals(period)
    if report_id is not None:
        query = recorded(query, term, report_id, ReportedRowKind.reversal)
    query = scoped(query, reseller, scope)
    parts.append((renewal_lines(query, term, reseller, ReportedRowKind.reversal, period.zone), _sums(query, term, -1)))
    return parts


async def records(connection: AsyncConnection, query: Select[Any]) -> AsyncIterator[str]:
    """The records in batches of text: one await and one join per batch."""
    result = await connection.stream(query.execution_options(yield_per=RECORD_BATCH))
    async for batch in result.scalars().partitions(RECORD_BATCH):
        yield "".join(batch)


async def counted_records(connection: AsyncConnection, query: Select[Any], totals: Totals) -> AsyncIterator[str]:
    """Records that come with (currency, amount): their text in batches, their sums per currency at the end."""
    sums: dict[str, list[Any]] = {}
    result = await connection.stream(query.execution_options(yield_per=RECORD_BATCH))
    async for batch in result.partitions(RECORD_BATCH):
        yield "".join([row[0] for row in batch])
        for _record, currency, amount in batch:
            entry = sums.get(currency)
            if entry is None:
                entry = sums[currency] = [0, Decimal(0)]
            entry[0] += 1
            if amount is not None:
                entry[1] += amount
    for currency, (rows, amount) in sums.items():
        totals.add_sum(currency, rows, amount)


async def add_sums(connection: AsyncConnection, query: Select[Any], totals: Totals) -> None:
    for currency, rows, amount in (await connection.execute(query)).all():
        totals.add_sum(currency, rows, amount if isinstance(amount, Decimal) else Decimal(0))


async def write_csv(
    connection: AsyncConnection, heading: Heading, period: Period, scope: Scope, report_id: uuid.UUID | None,
    totals: Totals,
) -> AsyncIterator[str]:  # fmt: skip
    """The CSV file: the header, then each part's records, then its sums (the rows were read by then)."""
    yield csv_line(heading.columns)
    late = await late_after(connection, period) if period.kind == ReportKind.renewals else None
    for lines, sums in statements(period, scope, report_id, late):
        if sums is None:
            async for chunk in counted_records(connection, lines, totals):
                yield chunk
            continue
        async for chunk in records(connection, lines):
            yield chunk
        await add_sums(connection, sums, totals)
