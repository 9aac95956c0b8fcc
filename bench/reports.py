"""Billing reports over 100,000 subscriptions, next to a plain `SELECT count(*)` over the same rows.

Each database (a SQLite file, and a PostgreSQL database made for the run on 127.0.0.1:5432) gets the
subscriptions bulk-inserted: 100 resellers, 2,000 customers, every subscription with a first term in February
2026 and its renewal starting in March, half of them in EUR and half in USD, and the terms' billing lines.
Then, three times each, the whole file of the March renewal report and of the active-subscriptions report on
2026-03-15 is streamed (CSV), and the floor: `count(*)` of the term rows each report reads. Only the ratio in
one run means something.

    python -m bench.reports [--count 100000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tessera.db import create_engine, create_session_factory, migrate
from tessera.models import Order, Organization, Product, ProductGroup, Subscription, SubscriptionTerm, TermKind
from tessera.reports.lines import write_lines
from tessera.reports.periods import active_day, renewal_month
from tessera.reports.queries import Scope
from tessera.reports.service import ReportRequest, new_manifest, prepare_format, stream_report
from tessera.settings import REPO_ROOT
from tessera.subscriptions.calendar import local_midnight

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ZONE = "Europe/Berlin"
BATCH = 5000
REPEAT = 3
MAX_SECONDS = 600.0


def _table(model: Any) -> Table:
    """The model's Core table: a plain executemany, none of the ORM's bulk bookkeeping."""
    table: Table = model.__table__
    return table


@lru_cache(maxsize=64)
def _at(day: date) -> Any:
    return local_midnight(day, ZoneInfo(ZONE))


async def populate(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    """Bulk inserts of Core rows: what the report reads, built as fast as the driver takes them."""
    vendor = uuid.uuid4()
    resellers = [uuid.uuid4() for _ in range(100)]
    customers = [(uuid.uuid4(), resellers[i % len(resellers)]) for i in range(2000)]
    group, product = uuid.uuid4(), uuid.uuid4()
    async with sessions() as session, session.begin():
        organizations: list[dict[str, Any]] = [{"id": vendor, "kind": "vendor", "parent_id": None, "name": "Vendor",
                                                "timezone": ZONE, "custom_fields": {}}]  # fmt: skip
        organizations += [{"id": r, "kind": "reseller", "parent_id": vendor, "name": f"Reseller {n}",
                           "erp_customer_no": f"R-{n}", "timezone": ZONE, "custom_fields": {}}
                          for n, r in enumerate(resellers)]  # fmt: skip
        organizations += [{"id": c, "kind": "customer", "parent_id": r, "name": f"Customer {n}",
                           "erp_customer_no": f"C-{n}", "timezone": ZONE, "custom_fields": {}}
                          for n, (c, r) in enumerate(customers)]  # fmt: skip
        for row in organizations:
            row.setdefault("erp_customer_no", None)
        await session.execute(insert(_table(Organization)), organizations)
        await session.execute(insert(_table(ProductGroup)), [{"id": group, "code": "CAD", "name": {"en": "CAD"}}])
        await session.execute(insert(_table(Product)), [{"id": product, "code": "SUB-CAD", "group_id": group,
                                                  "name": {"en": "CAD"}, "kind": "subscription",
                                                  "container_kinds": ["software"], "erp_material_no": "MAT-1",
                                                  "description": {}, "fields": [], "modules": []}])  # fmt: skip
    february, march, april = date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)
    for start in range(0, count, BATCH):
        orders: list[dict[str, Any]] = []
        subscriptions: list[dict[str, Any]] = []
        terms: list[dict[str, Any]] = []
        for index in range(start, min(start + BATCH, count)):
            customer, reseller = customers[index % len(customers)]
            order, subscription = uuid.uuid4(), uuid.uuid4()
            currency, price = ("EUR", Decimal("120.00")) if index % 2 else ("USD", Decimal("99.50"))
            orders.append({"id": order, "organization_id": customer, "product_id": product, "quantity": 2,
                           "allocation": "organization", "visibility": "all_members", "status": "fulfilled",
                           "external_ref": f"PO-{index}", "fields": {}, "modules": [], "trail": []})  # fmt: skip
            subscriptions.append({"id": subscription, "order_id": order, "product_id": product,
                                  "organization_id": customer, "reseller_id": reseller, "status": "active",
                                  "managed_by": "tessera", "quantity": 2, "timezone": ZONE, "terms": {},
                                  "unit_price": price, "currency": currency, "start_date": february,
                                  "imported_terms": 0, "term_no": 2, "cancellations": 0})  # fmt: skip
            for number, (first, end, kind) in enumerate(
                ((february, march, TermKind.first), (march, april, TermKind.renewal)), start=1
            ):
                terms.append({"id": uuid.uuid4(), "subscription_id": subscription, "term_no": number, "kind": kind,
                              "first_day": first, "valid_through": end - timedelta(days=1),
                              "starts_at": _at(first), "ends_at": _at(end), "quantity": 2, "unit_price": price,
                              "currency": currency, "amount": price * 2,
                              "committed_at": _at(first) - timedelta(days=10) if number == 2 else None,
                              "renewed_at": _at(first) if number == 2 else None})  # fmt: skip
        async with sessions() as session, session.begin():
            await session.execute(insert(_table(Order)), orders)
            await session.execute(insert(_table(Subscription)), subscriptions)
            await session.execute(insert(_table(SubscriptionTerm)), terms)


async def write_billing_lines(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The terms' billing lines, by the code the services write them with (each read back from its term)."""
    async with sessions() as session:
        ids = list((await session.scalars(select(SubscriptionTerm.id))).all())
    for start in range(0, len(ids), BATCH):
        async with sessions() as session, session.begin():
            await write_lines(session, ids[start : start + BATCH])


async def timed(action: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    best: list[float] = []
    result: object = None
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = await action()
        best.append(time.perf_counter() - started)
    return statistics.median(best), result


async def analyze(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        # Committed: inside a transaction that rolls back, ANALYZE's statistics are lost with it, and the
        # planner, believing the tables empty, picks nested loops over 100,000 rows.
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))


async def run_database(url: str, label: str, count: int) -> None:
    migrate(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    started = time.perf_counter()
    await populate(sessions, count)
    await analyze(engine)
    print(f"{label}: {count} subscriptions with renewals inserted in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    await write_billing_lines(sessions)
    await analyze(engine)
    print(f"{label}: {2 * count} billing lines written in {time.perf_counter() - started:.1f} s")
    prepared = await prepare_format(REPO_ROOT / "config" / "reports", "csv")
    march = renewal_month("2026-03", ZONE)
    on = active_day(date(2026, 3, 15), ZONE)
    renewal_floor = (
        select(func.count())
        .select_from(SubscriptionTerm)
        .where(SubscriptionTerm.kind == TermKind.renewal, SubscriptionTerm.starts_at >= march.starts_at,
               SubscriptionTerm.starts_at < march.ends_at)
    )  # fmt: skip
    active_floor = (
        select(func.count())
        .select_from(SubscriptionTerm)
        .where(SubscriptionTerm.starts_at <= on.starts_at, SubscriptionTerm.ends_at > on.starts_at)
    )
    for name, period, floor_query in (
        ("renewals 2026-03", march, renewal_floor),
        ("active 2026-03-15", on, active_floor),
    ):

        async def floor(query: Any = floor_query) -> object:
            async with sessions() as session:
                return await session.scalar(query)

        async def produce(period: Any = period) -> object:
            request = ReportRequest(period, Scope(), "csv")
            manifest = new_manifest(request, prepared)
            size = 0
            async for chunk in stream_report(sessions, request, prepared, manifest):
                size += len(chunk)
            return manifest.row_count, size

        floor_seconds, rows = await timed(floor)
        report_seconds, produced = await timed(produce)
        report_rows, size = cast("tuple[int, int]", produced)
        ratio = report_seconds / floor_seconds if floor_seconds else 0.0
        print(
            f"  {name:<18} report {report_seconds * 1000:8.1f} ms ({report_rows} rows, {size / 1e6:.1f} MB)  "
            f"floor count(*) {floor_seconds * 1000:7.1f} ms ({rows} rows)  ratio {ratio:5.1f}x"
        )
    await engine.dispose()


async def main(count: int, databases: list[str]) -> None:
    deadline = time.monotonic() + MAX_SECONDS
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory() as directory:
            await asyncio.wait_for(
                run_database(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}", "SQLite", count),
                timeout=max(1.0, deadline - time.monotonic()),
            )
    if "postgresql" in databases:
        name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            await asyncio.wait_for(
                run_database(url, "PostgreSQL", count), timeout=max(1.0, deadline - time.monotonic())
            )
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="subscriptions (at most 200,000)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    options = parser.parse_args()
    asyncio.run(main(min(options.count, 200_000), options.databases.split(",")))
