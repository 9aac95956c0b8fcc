"""System-check workflow (one activity reading the database) against a bare one-activity workflow.

Run: `.venv/bin/python -m bench.system_check [--count N] [--in-flight M]`. Bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from temporalio.worker import Worker

from bench.floor import BareWorkflow, Nothing, noop
from bench.harness import dev_server, measure, report
from tessera.db import create_engine, create_session_factory, migrate
from tessera.settings import Settings
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow
from workflows.worker import build_worker


async def main(count: int, in_flight: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'tessera.db'}"
        migrate(url)
        engine = create_engine(url)
        async with dev_server() as env:
            settings = Settings(database_url=url, task_queue=f"bench-{uuid.uuid4()}")
            tessera_worker = build_worker(env.client, settings, create_session_factory(engine))
            floor_queue = f"floor-{uuid.uuid4()}"
            floor_worker = Worker(env.client, task_queue=floor_queue, workflows=[BareWorkflow], activities=[noop])
            async with tessera_worker, floor_worker:

                async def bare(i: int) -> None:
                    await env.client.execute_workflow(
                        BareWorkflow.run, Nothing(activities=1), id=f"floor-{i}-{uuid.uuid4()}", task_queue=floor_queue
                    )

                async def check(i: int) -> None:
                    await env.client.execute_workflow(
                        SystemCheckWorkflow.run,
                        SystemCheckInput(requested_by="bench"),
                        id=f"check-{i}-{uuid.uuid4()}",
                        task_queue=settings.task_queue,
                    )

                floor = await measure("bare workflow, 1 no-op activity", count, in_flight, bare)
                subject = await measure("SystemCheckWorkflow (1 DB activity)", count, in_flight, check)
        await engine.dispose()
    report(subject, floor)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="workflows per measurement (at most 5000)")
    parser.add_argument("--in-flight", type=int, default=50, help="workflows running at once")
    arguments = parser.parse_args()
    asyncio.run(main(min(arguments.count, 5000), arguments.in_flight))
