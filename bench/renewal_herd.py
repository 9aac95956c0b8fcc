"""A renewal herd: N subscriptions whose terms all end at one instant T, against N bare timers firing at once.

Run: `.venv/bin/python -m bench.renewal_herd [--count 2000] [--max-cached N] [--sticky-timeout S]`. Calendar-year
alignment makes every subscription renew at local midnight on 1 January; here N subscriptions of a `P1D` product
(notice `P0D`) live in a time zone written for the run (tests/midnight_zone.py) whose midnight falls at T, so
their first term ends at T. They are written by the real creation code (order, subscription, term, license),
their SubscriptionWorkflows are started as the worker starts them and run by the real worker and activities on
the database: at T each one commits, renews (term row, licenses' expiry, history), writes its notification and
webhook rows, and continues as new into term 2, whose first task reads the subscription and sleeps again.

The floor, measured first on the same file-backed dev server: N bare workflows sleeping until one instant and
finishing when they wake. Printed: seconds from T until the last one is done (and at which rate), for the floor;
for the herd, seconds until the last renewal is recorded in the database, the latest `renewed_at`, and when the
last new run is asleep again; the dev server's resident memory (peak, from /proc) and database size. Bounded: at
most 10,000 subscriptions, each phase waits a limited time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import (
    Worker,
)

from bench.floor import HerdFloorWorkflow, RenewalShapeFloorWorkflow, ShapeAt, WakeAt, noop
from bench.harness import dev_server
from bench.watch import Seen, Watch
from tessera.db import create_engine, create_session_factory, migrate
from tessera.models import (
    License,
    Membership,
    Order,
    Organization,
    Product,
    ProductGroup,
    Subscription,
    SubscriptionTerm,
    User,
    new_id,
)
from tessera.settings import REPO_ROOT, Settings
from tessera.subscriptions.creation import ensure_for_order
from tests.midnight_zone import midnight_zone
from workflows.subscription_ops import start_subscription_workflow
from workflows.worker import WORKFLOW_RUNNER, build_worker

MAX_COUNT = 10_000
MAX_WAIT_SECONDS = 1200.0
"""A herd that is not done this long after T is reported as it stands."""
SECRET = "bench-secret-not-for-production"
CUSTOMERS = 100
IN_FLIGHT = 50
SETUP_SECONDS_PER_SUBSCRIPTION = 0.08
"""For choosing T: writing and starting one subscription takes about this long here (measured); T lies beyond."""


# --- the dev server's figures -------------------------------------------------------------------------------------


def server_pid() -> int:
    """The dev server: the `temporal` child of this process."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[1] == me and b"start-dev" in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise RuntimeError("the dev server process was not found among this process's children")


def memory_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def database_mb(pid: int) -> float:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    path = Path(argv[argv.index(b"--db-filename") + 1].decode())
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


@contextlib.contextmanager
def peak_memory(pid: int) -> Iterator[list[float]]:
    """Samples the server's resident memory every 0.5 s while the block runs; yields [peak MB]."""
    peak = [memory_mb(pid)]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], memory_mb(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    task = asyncio.get_running_loop().create_task(sample())
    try:
        yield peak
    finally:
        stop.set()
        task.cancel()


# --- waiting ------------------------------------------------------------------------------------------------------


async def until(at: datetime) -> None:
    await asyncio.sleep(max((at - datetime.now(UTC)).total_seconds(), 0))


async def poll(check: Any, count: int, deadline: float) -> tuple[int, float]:
    """Poll `check()` (a count) every 0.5 s until it reaches `count` or `deadline`; (last count, wall time)."""
    done = 0
    while time.time() < deadline:
        done = await check()
        if done >= count:
            break
        await asyncio.sleep(0.5)
    return done, time.time()


async def in_parallel(count: int, one: Any) -> None:
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def bounded(index: int) -> None:
        async with semaphore:
            await one(index)

    await asyncio.gather(*(bounded(i) for i in range(count)))


# --- the floor run ------------------------------------------------------------------------------------------------


async def floor(
    client: Client, count: int, options: argparse.Namespace, pid: int, *, shaped: bool = False
) -> dict[str, float]:
    """Bare timers (or, `shaped`, the renewal's shape with nothing in it) waking at one instant."""
    seen = Seen()
    queue = f"herd-floor-{uuid.uuid4().hex[:8]}"
    kind: Any = RenewalShapeFloorWorkflow if shaped else HerdFloorWorkflow
    wake_at = (datetime.now(UTC) + timedelta(seconds=20 + count * 0.04)).replace(microsecond=0)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[kind],
        activities=[noop],
        # sandboxed like Tessera's workflows; this module passes through, so the watch's counts are the real ones
        workflow_runner=WORKFLOW_RUNNER,  # sandboxed like Tessera's workflows
        interceptors=[Watch(seen)],
        max_cached_workflows=options.max_cached,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout),
    ):

        async def one(index: int) -> None:
            wake = ShapeAt(at=wake_at) if shaped else WakeAt(at=wake_at)
            await client.start_workflow(kind.run, wake, id=f"{queue}-{index}", task_queue=queue)

        await in_parallel(count, one)
        _asleep, asleep_at = await poll(_count(seen, "started"), count, wake_at.timestamp())
        late = asleep_at - wake_at.timestamp()
        await until(wake_at)
        with peak_memory(pid) as peak:
            woke, _ = await poll(_count(seen, "woke"), count, wake_at.timestamp() + MAX_WAIT_SECONDS)

            async def completed() -> int:
                query = f'WorkflowType = "{kind.__name__}" AND TaskQueue = "{queue}" AND ExecutionStatus = "Completed"'
                return (await client.count_workflows(query)).count

            closed, closed_at = await poll(completed, count, wake_at.timestamp() + MAX_WAIT_SECONDS)
    return {
        "count": count,
        "setup_late": late,
        "woke": woke,
        "last_woke": seen.last.get("woke", 0.0) - wake_at.timestamp(),
        "closed": closed,
        "last_closed": closed_at - wake_at.timestamp(),
        "peak_mb": peak[0],
    }


def _count(seen: Seen, what: str) -> Any:
    async def check() -> int:
        return seen.counts.get(what, 0)

    return check


# --- the herd -----------------------------------------------------------------------------------------------------


async def world(sessions: async_sessionmaker[AsyncSession], count: int, zone: str) -> list[uuid.UUID]:
    """Resellers, customers with an admin each (the renewal notice's readers), a daily product, N orders."""
    async with sessions() as session:
        vendor = Organization(kind="vendor", name="Herd vendor", custom_fields={})
        group = ProductGroup(code=f"H{uuid.uuid4().hex[:6].upper()}", name={"en": "Herd"})
        session.add_all([vendor, group])
        await session.flush()
        product = Product(
            code=f"HERD-{uuid.uuid4().hex[:6].upper()}",
            group_id=group.id,
            name={"en": "Daily herd subscription"},
            kind="subscription",
            container_kinds=["software"],
            price_amount=1,
            price_currency="EUR",
            subscription={"term": "P1D", "notice_period": "P0D"},
        )
        session.add(product)
        customers: list[uuid.UUID] = []
        for index in range(min(CUSTOMERS, count)):
            if index % 10 == 0:
                reseller = Organization(kind="reseller", parent_id=vendor.id, name=f"R{index}", custom_fields={})
                session.add(reseller)
                await session.flush()
            customer = Organization(
                kind="customer", parent_id=reseller.id, name=f"C{index}", timezone=zone, custom_fields={}
            )
            admin = User(email=f"admin{index}@herd.example", name=f"Admin {index}")
            session.add_all([customer, admin])
            await session.flush()
            session.add(Membership(user_id=admin.id, organization_id=customer.id, role="admin"))
            customers.append(customer.id)
        await session.flush()
        order_ids = [new_id() for _ in range(count)]
        await session.execute(
            insert(Order),
            [
                {
                    "id": order_id,
                    "organization_id": customers[index % len(customers)],
                    "product_id": product.id,
                    "quantity": 1,
                    "allocation": "organization",
                    "visibility": "all_members",
                    "status": "fulfilled",
                    "fields": {},
                    "modules": [],
                    "trail": [],
                }
                for index, order_id in enumerate(order_ids)
            ],
        )
        await session.commit()
        product_id = product.id
    subscriptions: list[uuid.UUID] = []
    for first in range(0, count, 500):  # as licenses.create does: the subscription with its licenses, 500 a commit
        async with sessions() as session:
            bought = await session.get(Product, product_id)
            assert bought is not None
            now = datetime.now(UTC)
            for order_id in order_ids[first : first + 500]:
                order = await session.get(Order, order_id)
                assert order is not None
                subscription = await ensure_for_order(session, order, bought, now)
                session.add(
                    License(
                        order_id=order.id,
                        line_no=1,
                        product_id=bought.id,
                        organization_id=order.organization_id,
                        subscription_id=subscription.id,
                        expires_at=subscription.term_ends_at,
                    )
                )
                subscriptions.append(subscription.id)
            await session.commit()
    return subscriptions


async def herd(client: Client, count: int, options: argparse.Namespace, pid: int, directory: Path) -> dict[str, float]:
    url = options.database_url or f"sqlite+aiosqlite:///{directory / 'tessera.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    seen = Seen()
    renews_at = (datetime.now(UTC) + timedelta(seconds=30 + count * SETUP_SECONDS_PER_SUBSCRIPTION)).replace(
        microsecond=0
    )
    settings = Settings(
        database_url=url,
        var_dir=directory,
        config_dir=REPO_ROOT / "config",
        secret_key=SECRET,
        task_queue=f"herd-{uuid.uuid4().hex[:8]}",
        worker_max_cached_workflows=options.max_cached,
        worker_sticky_timeout_seconds=options.sticky_timeout,
    )
    try:
        with midnight_zone(renews_at) as zone:
            written_at = time.time()
            subscription_ids = await world(sessions, count, zone)
            written = time.time() - written_at
            async with build_worker(client, settings, sessions, interceptors=[Watch(seen)]):
                started_at = time.time()

                async def one(index: int) -> None:
                    async with sessions() as session:
                        subscription = await session.get(Subscription, subscription_ids[index])
                        assert subscription is not None
                        await start_subscription_workflow(client, settings.task_queue, session, subscription)

                await in_parallel(count, one)
                _, asleep_at = await poll(_count(seen, "subscriptions.begin"), count, renews_at.timestamp())
                late = asleep_at - renews_at.timestamp()
                started = asleep_at - started_at
                await until(renews_at)
                with peak_memory(pid) as peak:
                    renewed, renewed_at = await poll(
                        _renewed(sessions), count, renews_at.timestamp() + MAX_WAIT_SECONDS
                    )
                    # Runs of term 2 begin with what the renewal read (no read of their own): count their starts.
                    _, asleep_again_at = await poll(
                        _count(seen, "started"), 2 * count, renews_at.timestamp() + MAX_WAIT_SECONDS
                    )
                async with sessions() as session:
                    latest = await session.scalar(
                        select(func.max(SubscriptionTerm.renewed_at)).where(SubscriptionTerm.term_no == 2)
                    )
                    terms_2 = await session.scalar(
                        select(func.count()).select_from(SubscriptionTerm).where(SubscriptionTerm.term_no == 2)
                    )
    finally:
        await engine.dispose()
    assert terms_2 == renewed, (terms_2, renewed)  # one renewal row per renewed subscription, never two
    latest_at = latest.replace(tzinfo=latest.tzinfo or UTC) if latest else renews_at
    return {
        "count": count,
        "written": written,
        "started": started,
        "setup_late": late,
        "renewed": renewed,
        "last_recorded": renewed_at - renews_at.timestamp(),
        "latest_renewed_at": (latest_at - renews_at).total_seconds(),
        "last_renew_activity": seen.last.get("subscriptions.end_term", 0.0) - renews_at.timestamp(),
        "asleep_again": asleep_again_at - renews_at.timestamp(),
        "peak_mb": peak[0],
        "busy": {name: f"{seconds:.1f} ({seen.counts[name]})" for name, seconds in seen.busy.items()},  # type: ignore[dict-item]
    }


def _renewed(sessions: async_sessionmaker[AsyncSession]) -> Any:
    async def check() -> int:
        async with sessions() as session:
            return int(await session.scalar(select(func.count()).where(Subscription.term_no >= 2)) or 0)

    return check


# --- the run ------------------------------------------------------------------------------------------------------


async def main(options: argparse.Namespace) -> None:
    count = options.count
    with tempfile.TemporaryDirectory() as directory:
        async with dev_server() as env:
            pid = server_pid()
            print(f"dev server pid {pid}: {memory_mb(pid):.0f} MB resident before the run")
            base = await floor(env.client, count, options, pid)
            shape = await floor(env.client, count, options, pid, shaped=True)
            after_floor = memory_mb(pid)
            subject = await herd(env.client, count, options, pid, Path(directory))
            print(f"worker: max cached workflows {options.max_cached}, sticky timeout {options.sticky_timeout:g} s")
            for name, figures in (("floor", base), ("shape floor", shape), ("herd", subject)):
                if figures["setup_late"] >= 0:
                    print(f"!! {name}: setup finished {figures['setup_late']:.0f} s after the instant; figures unfair")
            print(
                f"floor: {base['count']} bare timers at one instant: last woke +{base['last_woke']:.1f} s, "
                f"all completed (visibility) +{base['last_closed']:.1f} s "
                f"({base['closed'] / max(base['last_closed'], 0.001):.1f}/s); server peak {base['peak_mb']:.0f} MB"
            )
            print(
                f"shape floor: {shape['count']} workflows of a renewal's shape (timer, one no-op local activity, "
                f"continue-as-new, a run that ends): all completed +{shape['last_closed']:.1f} s"
            )
            print(
                f"herd: {subject['count']} subscriptions written in {subject['written']:.1f} s, "
                f"workflows started and asleep in {subject['started']:.1f} s"
            )
            print(
                f"herd: {subject['renewed']} renewals: last recorded in the database +{subject['last_recorded']:.1f} s "
                f"(latest renewed_at +{subject['latest_renewed_at']:.1f} s, last renew activity "
                f"+{subject['last_renew_activity']:.1f} s), all asleep in term 2 +{subject['asleep_again']:.1f} s; "
                f"server peak {subject['peak_mb']:.0f} MB"
            )
            print(
                f"dev server: {memory_mb(pid):.0f} MB resident now ({after_floor:.0f} MB after the floor, "
                f"high-water mark {memory_mb(pid, 'VmHWM'):.0f} MB), database {database_mb(pid):.0f} MB"
            )
            print("activity seconds in the worker (count):", subject["busy"])
            ratio = subject["last_recorded"] / base["last_closed"] if base["last_closed"] > 0 else 0.0
            print(f"=> herd: {ratio:.2f} x the floor's time (goal: at most 2 x), measured in this run")
            shaped = subject["last_recorded"] / shape["last_closed"] if shape["last_closed"] > 0 else 0.0
            print(
                f"=> herd: {shaped:.2f} x the renewal-shaped floor; that floor is "
                f"{shape['last_closed'] / max(base['last_closed'], 0.001):.2f} x the bare timers"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help=f"subscriptions, and bare timers (at most {MAX_COUNT})")
    parser.add_argument("--max-cached", type=int, default=Settings.model_fields["worker_max_cached_workflows"].default)
    parser.add_argument(
        "--sticky-timeout", type=float, default=Settings.model_fields["worker_sticky_timeout_seconds"].default
    )
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite file)")
    arguments = parser.parse_args()
    arguments.count = min(max(arguments.count, 1), MAX_COUNT)
    asyncio.run(main(arguments))
