"""Orders through the real stack (`tessera dev`: API, worker, dev server, SQLite) against bare Temporal workflows.

Run: `.venv/bin/python -m bench.orders [--count N] [--in-flight M]`. It starts `tessera dev` in a temporary
directory on free loopback ports, pushes a bounded batch of orders through `POST /api/v1/orders` and waits for each
workflow's result; then, on the same dev server, runs the floor: bare workflows with as many no-op activities as
the shipped license_order process has steps. Both are bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.floor import BareWorkflow, Nothing, noop
from bench.harness import Figures, measure, report
from tessera.processes import resolve_steps
from tessera.processes.startup import load_configured_workflows
from tessera.settings import REPO_ROOT, Settings
from tests.e2e.stack import DevStack
from workflows.order_models import OrderState


async def _customer(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    vendors = await api.get("/api/v1/organizations", params={"kind": "vendor"}, headers=headers)
    vendors.raise_for_status()
    body = {"kind": "customer", "name": f"Bench customer {uuid.uuid4().hex[:6]}",
            "parent_id": vendors.json()["items"][0]["id"]}  # fmt: skip
    response = await api.post("/api/v1/organizations", json=body, headers=headers)
    response.raise_for_status()
    return str(response.json()["id"])


async def run(count: int, in_flight: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        stack = DevStack(workdir=Path(directory))
        stack.start()
        try:
            await asyncio.to_thread(stack.wait_healthy)
            key = (stack.var_dir / "admin-key").read_text().strip()
            headers = {"Authorization": f"Bearer {key}"}
            client = await Client.connect(f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter)
            steps = resolve_steps(
                load_configured_workflows(Settings(config_dir=REPO_ROOT / "config")),
                "license_order",
                product_group="CAD",
                product="PRO-CAD",
            ).steps
            limits = httpx.Limits(max_connections=in_flight)
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as api:
                customer = await _customer(api, headers)

                accepted: list[float] = []

                async def order(i: int) -> None:
                    begin = time.perf_counter()
                    body = {"organization_id": customer, "product": "PRO-CAD", "quantity": 1,
                            "allocation": "organization"}  # fmt: skip
                    response = await api.post(
                        "/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": f"bench-{i}-{uuid.uuid4()}"}
                    )
                    response.raise_for_status()
                    accepted.append(time.perf_counter() - begin)
                    handle = client.get_workflow_handle(response.json()["workflow_id"], result_type=OrderState)
                    state = await handle.result()
                    assert state.status == "fulfilled", state.status

                tessera = await measure("Tessera orders (API to fulfilled)", count, in_flight, order)
                answers = Figures("  of which POST /orders answered (202)", len(accepted), tessera.seconds, accepted)

            queue = f"floor-{uuid.uuid4()}"
            async with Worker(client, task_queue=queue, workflows=[BareWorkflow], activities=[noop]):

                async def bare(i: int) -> None:
                    await client.execute_workflow(
                        BareWorkflow.run,
                        Nothing(activities=len(steps)),
                        id=f"floor-{i}-{uuid.uuid4()}",
                        task_queue=queue,
                    )

                floor = await measure(f"bare workflow, {len(steps)} no-op activities", count, in_flight, bare)
        finally:
            if stack.process is not None and stack.process.poll() is None:
                await asyncio.to_thread(stack.interrupt)
            stack.kill()
    report(tessera, floor)
    print(answers.line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="orders and floor workflows (at most 3000)")
    parser.add_argument("--in-flight", type=int, default=30, help="requests in flight at once")
    arguments = parser.parse_args()
    asyncio.run(run(min(arguments.count, 3000), arguments.in_flight))
