"""A worker killed with SIGKILL in the middle of an order, then restarted: the order completes, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, License, Ticket
from tessera.orders.status import OrderStatus
from tessera.settings import REPO_ROOT
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import CREATE, place_order, process, start, workflow_input

QUANTITY = 60
STEPS = process(
    CREATE,
    {"kind": "allocate", "to": "organization"},
    {"kind": "notify", "name": "tell", "template": "order_fulfilled.txt.j2"},
)


def _worker(env: WorkflowEnvironment, database_url: str, queue: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
    environ.update(
        TESSERA_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TESSERA_DATABASE_URL=database_url,
        TESSERA_SECRET_KEY=TEST_SECRET.decode(),
        TESSERA_CONFIG_DIR=str(REPO_ROOT / "config"),
        TESSERA_TASK_QUEUE=queue,
        TESSERA_VAR_DIR=str(tmp_path),
        TESSERA_LOG_LEVEL="warning",
    )
    return subprocess.Popen([sys.executable, "-m", "tessera.cli", "worker"], env=environ)


async def test_order_survives_a_killed_worker(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    tmp_path: Path,
) -> None:
    order = await place_order(sessions, rights_world, quantity=QUANTITY, reserve=False)
    queue = f"crash-{uuid.uuid4()}"
    worker = _worker(dev_env, database_url, queue, tmp_path)
    try:
        handle = await start(dev_env.client, queue, await workflow_input(sessions, order, STEPS))
        # Kill the worker while it runs licenses.create, the step that writes most.
        caught = False
        for _ in range(1500):
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            if any(activity.activity_type.name == "licenses.create" and activity.state == 2 for activity in pending):
                caught = True
                break
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert caught, "the worker never started licenses.create"
        worker = _worker(dev_env, database_url, queue, tmp_path)
        state = await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        worker.kill()
        worker.wait(10)
    assert state.status == OrderStatus.fulfilled
    async with sessions() as session:
        licenses = await session.scalar(select(func.count()).select_from(License).where(License.order_id == order.id))
        tickets = await session.scalar(
            select(func.count()).select_from(Ticket).join(License).where(License.order_id == order.id)
        )
        events = await session.scalar(select(func.count()).select_from(Event).where(Event.order_id == order.id))
    assert (licenses, tickets, events) == (QUANTITY, QUANTITY, 1)
