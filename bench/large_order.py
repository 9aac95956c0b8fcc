"""One 10,000-license order through licenses.create against a bare insert of as many rows, on the same database.

Run: `.venv/bin/python -m bench.large_order [--quantity N] [--database-url URL]`. It migrates a fresh SQLite file
(or the empty PostgreSQL database given), stores one accepted order and runs the real activity as a worker would
(ActivityEnvironment: heartbeats, one transaction per chunk). The floor, measured in the same run on the same
database: the same number of rows inserted into the license table with SQLAlchemy Core, committed in the same
chunks, without tickets, codes or idempotency checks. Each chunk's time is a latency; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from bench.harness import MAX_SECONDS_PER_RUN, Figures, report
from tessera.db import create_engine, create_session_factory, migrate
from tessera.licenses.fulfilment import CHUNK
from tessera.models import License, Order, Organization, Product, ProductGroup, new_id
from tessera.settings import REPO_ROOT
from workflows.order_models import OrderRef

SECRET = b"bench-secret-not-for-production"
MAX_QUANTITY = 10_000


async def _order(sessions: async_sessionmaker[AsyncSession], quantity: int) -> tuple[Order, uuid.UUID]:
    async with sessions() as session:
        vendor = Organization(kind="vendor", name=f"Bench vendor {uuid.uuid4().hex[:6]}", custom_fields={})
        group = ProductGroup(code=f"B{uuid.uuid4().hex[:6].upper()}", name={"en": "Bench"})
        session.add_all([vendor, group])
        await session.flush()
        product = Product(
            code=f"BENCH-{uuid.uuid4().hex[:6].upper()}",
            group_id=group.id,
            name={"en": "Bench"},
            kind="perpetual",
            container_kinds=["software"],
        )
        session.add(product)
        await session.flush()
        order = Order(
            organization_id=vendor.id,
            product_id=product.id,
            quantity=quantity,
            allocation="organization",
            visibility="all_members",
            status="approved",
        )
        floor_order = Order(
            organization_id=vendor.id,
            product_id=product.id,
            quantity=quantity,
            allocation="organization",
            visibility="all_members",
            status="approved",
        )
        session.add_all([order, floor_order])
        await session.commit()
        return order, floor_order.id


async def _through_the_activity(sessions: async_sessionmaker[AsyncSession], order: Order) -> Figures:
    activities = OrderActivities(sessions, SECRET, REPO_ROOT / "config" / "templates", "http://127.0.0.1:8000")
    environment = ActivityEnvironment()
    latencies: list[float] = []
    last = [time.perf_counter()]

    def beat(*_details: object) -> None:
        now = time.perf_counter()
        latencies.append(now - last[0])
        last[0] = now

    environment.on_heartbeat = beat
    started = last[0]
    created = await asyncio.wait_for(
        environment.run(activities.create_licenses, OrderRef(order_id=str(order.id))), MAX_SECONDS_PER_RUN
    )
    assert created.created == order.quantity, created
    return Figures(f"licenses.create, {CHUNK} per commit", created.created, time.perf_counter() - started, latencies)


async def _bare_insert(sessions: async_sessionmaker[AsyncSession], order: Order, floor_order: uuid.UUID) -> Figures:
    latencies: list[float] = []
    started = time.perf_counter()
    for first in range(1, order.quantity + 1, CHUNK):
        begin = time.perf_counter()
        rows = [
            {
                "id": new_id(),
                "order_id": floor_order,
                "line_no": line_no,
                "product_id": order.product_id,
                "organization_id": order.organization_id,
                "fields": {},
                "modules": [],
                "status": "active",
            }
            for line_no in range(first, min(first + CHUNK, order.quantity + 1))
        ]
        async with sessions() as session:
            await session.execute(insert(License), rows)
            await session.commit()
        latencies.append(time.perf_counter() - begin)
    return Figures(f"bare Core insert, {CHUNK} per commit", order.quantity, time.perf_counter() - started, latencies)


async def run(quantity: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = database_url or f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await asyncio.to_thread(migrate, url)
        engine = create_engine(url)
        try:
            sessions = create_session_factory(engine)
            order, floor_order = await _order(sessions, quantity)
            floor = await _bare_insert(sessions, order, floor_order)
            subject = await _through_the_activity(sessions, order)
        finally:
            await engine.dispose()
    print(f"database: {url.split('://', 1)[0]}")
    report(subject, floor)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quantity", type=int, default=MAX_QUANTITY, help=f"licenses (at most {MAX_QUANTITY})")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite file)")
    arguments = parser.parse_args()
    asyncio.run(run(min(arguments.quantity, MAX_QUANTITY), arguments.database_url))
