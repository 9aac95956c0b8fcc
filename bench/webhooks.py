"""Webhook deliveries per second to a local receiver, next to bare one-activity workflows on the same server.

Each delivery is the real path: the outbox relay records the delivery row and starts WebhookDeliveryWorkflow, whose
attempt activity signs, posts to a receiver on loopback, and records the answer. Bounded in count and time.

    python -m bench.webhooks [--count 200]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select
from temporalio.worker import Worker

from bench.floor import BareWorkflow, Nothing, noop
from bench.harness import MAX_SECONDS_PER_RUN, Figures, dev_server, measure, report
from tessera.db import create_engine, create_session_factory, migrate
from tessera.settings import REPO_ROOT, Settings
from tessera.webhooks.models import WebhookDelivery
from tessera.webhooks.status import DeliveryStatus
from tests.conftest import TEST_SECRET
from tests.webhook_receiver import running_receiver
from tests.webhook_world import add_endpoint, add_event, build_world
from workflows.outbox_relay import build_relay
from workflows.worker import build_worker


async def main(count: int) -> None:
    async with dev_server() as env, running_receiver() as receiver:
        queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[BareWorkflow], activities=[noop]):

            async def bare(index: int) -> None:
                await env.client.execute_workflow(
                    BareWorkflow.run, Nothing(activities=1), id=f"floor-{queue}-{index}", task_queue=queue
                )

            floor = await measure("floor: bare workflow, 1 no-op activity", count, 30, bare)
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite+aiosqlite:///{Path(directory) / 'tessera.db'}"
            migrate(url)
            engine = create_engine(url)
            sessions = create_session_factory(engine)
            settings = Settings(
                database_url=url,
                var_dir=Path(directory),
                config_dir=REPO_ROOT / "config",
                secret_key=TEST_SECRET.decode(),  # the secret the world's endpoint was encrypted under
                task_queue=f"bench-webhooks-{uuid.uuid4().hex[:8]}",
                webhook_allow_http_loopback=True,
                outbox_relay_interval_seconds=0.05,
            )
            world = await build_world(sessions)
            await add_endpoint(sessions, world, receiver.url)
            for _ in range(count):
                await add_event(sessions, world.customer_id)
            stop = asyncio.Event()
            started = time.perf_counter()
            async with build_worker(env.client, settings, sessions):
                relay = asyncio.create_task(build_relay(env.client, sessions, settings).run(stop))
                delivered = 0
                while time.perf_counter() - started < MAX_SECONDS_PER_RUN:
                    async with sessions() as session:
                        delivered = int(
                            await session.scalar(
                                select(func.count())
                                .select_from(WebhookDelivery)
                                .where(WebhookDelivery.status == DeliveryStatus.delivered)
                            )
                            or 0
                        )
                    if delivered >= count:
                        break
                    await asyncio.sleep(0.1)
                seconds = time.perf_counter() - started
                stop.set()
                await relay
            await engine.dispose()
    # Per-delivery latency is not observable from outside without extra writes; the run's throughput is.
    report(Figures("Tessera webhook deliveries, relay to 2xx", delivered, seconds, []), floor)
    print(f"receiver got {len(receiver.received)} requests for {count} events")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="events to deliver (at most 2000)")
    arguments = parser.parse_args()
    asyncio.run(main(min(max(arguments.count, 1), 2000)))
