"""Ctrl-C stops `tessera dev` within seconds while an activity is stuck on a locked database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tessera.devstack import STOP_DEADLINE_SECONDS
from tests.e2e.stack import DevStack, alive, descendants

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(workdir=tmp_path)
    yield stack
    stack.kill()


async def _order_waiting_for_approval(api: httpx.AsyncClient, auth: dict[str, str]) -> str:
    vendor = (await api.get("/api/v1/users/me", headers=auth)).json()["memberships"][0]["organization_id"]
    # More than 10 licenses: the shipped workflows.yaml asks the group's administrators first.
    body = {"organization_id": vendor, "product": "PRO-CAD", "quantity": 11, "allocation": "organization"}
    created = await api.post("/api/v1/orders", json=body, headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
    assert created.status_code == 202, created.text
    order_id = str(created.json()["id"])
    for _ in range(100):
        if (await api.get(f"/api/v1/orders/{order_id}", headers=auth)).json()["status"] == "pending_approval":
            return order_id
        await asyncio.sleep(0.2)
    raise AssertionError("the order never waited for approval")


async def test_ctrl_c_stops_everything_while_an_activity_is_stuck(stack: DevStack) -> None:
    stack.start()
    await asyncio.to_thread(stack.wait_healthy)
    key = stack.admin_key_printed()
    assert key is not None
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        order_id = await _order_waiting_for_approval(api, auth)

    # Hold the write lock: the approval's database step in the worker waits on it (busy timeout, then retries).
    lock = sqlite3.connect(stack.var_dir / "tessera.db", isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN IMMEDIATE")
    try:

        def approve() -> None:
            # The API is stopped under it: no answer is the expected outcome.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{stack.api_url}/api/v1/orders/{order_id}/approve", headers=auth, timeout=60)

        threading.Thread(target=approve, daemon=True).start()
        await asyncio.sleep(3)  # the update has reached the workflow; its local activity waits on the lock
        assert stack.process is not None
        children = descendants(stack.process.pid)
        started = time.monotonic()
        code = await asyncio.to_thread(stack.interrupt, 30)
        took = time.monotonic() - started
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert code == 0, stack.text()
    assert took < STOP_DEADLINE_SECONDS + 3, f"Ctrl-C took {took:.1f} s:\n{stack.text()}"
    assert not [pid for pid in children if alive(pid)], "child processes survived Ctrl-C"
