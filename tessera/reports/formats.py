"""Report formats: csv, json, html built in, and Jinja2 templates in `config/reports/` added by analysts.

Every writer is a stream of text chunks over a stream of rows, so no report is ever held in memory. The
output depends only on the rows (no generation time inside), and the rows come in a fixed order: the same data
gives the same bytes. Totals are counted while the rows go by; the built-in writers put them last.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import Environment, select_autoescape

from tessera.catalog.service import format_amount
from tessera.reports.sellers import Row

BUILT_IN = ("csv", "json", "html")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "xml": "application/xml",
    "tsv": "text/tab-separated-values; charset=utf-8",
}

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "'")
NUMBER_PATTERN = "^-?[0-9]+([.][0-9]+)?$"
"""A number a spreadsheet reads as one (ASCII digits, the whole cell): never defused. Shared with the SQL
writer, so both defuse the same cells."""
_NUMBER = re.compile(NUMBER_PATTERN.removesuffix("$") + r"\Z")


def defuse(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe; numbers (e.g. -120.00) stay numbers.

    To read a cell back, drop one leading apostrophe: cells that began with one are prefixed too, so this is exact.
    """
    if cell and cell.startswith(_DANGEROUS) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


def undefuse(cell: str) -> str:
    """The inverse of `defuse`, for whoever reads the CSV back."""
    return cell[1:] if cell.startswith("'") else cell


def csv_line(cells: Iterable[object], delimiter: str = ",") -> str:
    """One RFC 4180 record (CRLF), every cell defused."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(
        defuse("" if cell is None else str(cell)) for cell in cells
    )
    return buffer.getvalue()


@dataclass
class Totals:
    """Rows and net amounts per currency (never summed across currencies); per reseller too."""

    columns: tuple[str, ...]
    rows: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    by_reseller: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._currency = self.columns.index("currency")
        self._amount = self.columns.index("net_amount")
        self._reseller = self.columns.index("reseller_id")

    def add(self, row: Row) -> None:
        self.rows += 1
        currency = row[self._currency]
        amount = _decimal(row[self._amount])
        self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount
        self.counts[currency] = self.counts.get(currency, 0) + 1
        key = (row[self._reseller], currency)
        self.by_reseller[key] = self.by_reseller.get(key, Decimal(0)) + amount

    def add_sum(self, currency: str, rows: int, amount: Decimal) -> None:
        """Rows counted elsewhere (by the database): only the per-currency totals, not those per reseller."""
        self.rows += rows
        self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount
        self.counts[currency] = self.counts.get(currency, 0) + rows

    def per_currency(self) -> list[dict[str, Any]]:
        return [
            {"currency": currency, "rows": self.counts[currency], "net_amount": _amount(amount, currency)}
            for currency, amount in sorted(self.amounts.items())
        ]

    def per_reseller(self) -> list[dict[str, Any]]:
        return [
            {"reseller_id": reseller, "currency": currency, "net_amount": _amount(amount, currency)}
            for (reseller, currency), amount in sorted(self.by_reseller.items())
        ]


@lru_cache(maxsize=4096)
def _decimal(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def _amount(amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency) if currency else str(amount)


Batches = AsyncIterator[list[Row]]
"""Rows come in batches (a few thousand): per-row awaits would cost more than writing the rows."""


async def counted(batches: Batches, totals: Totals) -> Batches:
    async for batch in batches:
        for row in batch:
            totals.add(row)
        yield batch


async def each_row(batches: Batches, totals: Totals) -> AsyncIterator[dict[str, str]]:
    """One row at a time, counted, by column name, for templates that loop over `rows`."""
    columns = totals.columns
    async for batch in counted(batches, totals):
        for row in batch:
            yield dict(zip(columns, row, strict=True))


@dataclass(frozen=True)
class Heading:
    """What a report is, for the writers: nothing that changes from one run to the next."""

    kind: str
    period: str
    first_day: str
    end_day: str
    scope: str
    columns: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "period": self.period,
            "from": self.first_day,
            "to": self.end_day,
            "scope": self.scope,
            "columns": list(self.columns),
        }


Writer = Callable[[Heading, Batches, Totals], AsyncIterator[str]]

FREE_TEXT = frozenset(
    {"reseller_erp_no", "reseller_name", "customer_erp_no", "customer_name", "product_code", "erp_material_no",
     "external_ref"}
)  # fmt: skip
"""Columns holding text that people typed; the others (ids, dates, amounts, codes) are Tessera's own."""


async def write_csv(heading: Heading, batches: Batches, totals: Totals) -> AsyncIterator[str]:
    yield csv_line(heading.columns)
    free = [index for index, column in enumerate(heading.columns) if column in FREE_TEXT]
    async for batch in counted(batches, totals):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows(_defused(row, free) for row in batch)
        yield buffer.getvalue()


_FIRST_DANGEROUS = frozenset(_DANGEROUS)


def _defused(cells: tuple[str, ...], free: list[int]) -> Sequence[str]:
    """The record's cells, with free-text cells defused; most records need no change, and are not copied."""
    for index in free:
        cell = cells[index]
        if cell and cell[0] in _FIRST_DANGEROUS:
            fixed = list(cells)
            for position in free:
                fixed[position] = defuse(fixed[position])
            return fixed
    return cells


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def write_json(heading: Heading, batches: Batches, totals: Totals) -> AsyncIterator[str]:
    yield '{"report":' + _json(heading.as_dict()) + ',"rows":['
    first = True
    async for batch in counted(batches, totals):
        if batch:
            named = (dict(zip(heading.columns, row, strict=True)) for row in batch)
            yield ("\n" if first else ",\n") + ",\n".join(_json(row) for row in named)
            first = False
    yield '\n],"totals":' + _json(totals.per_currency())
    if heading.kind == "active-subscriptions":
        yield ',"totals_per_reseller":' + _json(totals.per_reseller())
    yield "}\n"


_HTML = Environment(autoescape=select_autoescape(default=True), enable_async=True)
_HTML_TEMPLATE = _HTML.from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}\
td.n{text-align:right}</style></head>
<body><h1>{{ title }}</h1>
<p>Period {{ report.from }} to {{ report.to }} (exclusive), scope {{ report.scope }}.</p>
<table><thead><tr>{% for column in report.columns %}<th>{{ column }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr>{% for column in report.columns %}<td{% if column in numeric %} class="n"{% endif %}>\
{{ row[column] }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<h2>Totals per currency</h2>
<table><thead><tr><th>currency</th><th>rows</th><th>net_amount</th></tr></thead><tbody>
{% for total in totals.per_currency() %}<tr><td>{{ total.currency }}</td><td class="n">{{ total.rows }}</td>\
<td class="n">{{ total.net_amount }}</td></tr>
{% endfor %}</tbody></table>
{% if report.kind == "active-subscriptions" %}<h2>Totals per reseller</h2>
<table><thead><tr><th>reseller_id</th><th>currency</th><th>net_amount</th></tr></thead><tbody>
{% for total in totals.per_reseller() %}<tr><td>{{ total.reseller_id or "direct" }}</td><td>{{ total.currency }}</td>\
<td class="n">{{ total.net_amount }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
</body></html>
"""
)
_NUMERIC = frozenset({"quantity", "unit_price", "net_amount", "term_no"})


async def write_html(heading: Heading, batches: Batches, totals: Totals) -> AsyncIterator[str]:
    title = f"{'Renewals' if heading.kind == 'renewals' else 'Active subscriptions'} {heading.period}"
    context = {
        "title": title,
        "report": heading.as_dict(),
        "rows": each_row(batches, totals),
        "totals": totals,
        "numeric": _NUMERIC,
    }
    async for chunk in _HTML_TEMPLATE.generate_async(context):
        yield chunk


BUILT_IN_WRITERS: dict[str, tuple[Writer, str]] = {
    "csv": (write_csv, "csv"),
    "json": (write_json, "json"),
    "html": (write_html, "html"),
}
