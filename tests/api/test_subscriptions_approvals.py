"""Cancellations and revocations waiting at an approval step, decided through the API (a real worker runs them)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.models import Subscription
from tessera.settings import REPO_ROOT, Settings
from tests.api.subscriptions import SUBSCRIPTIONS, add_subscription_products, give_permissions, make_subscription
from tests.conftest import RightsWorld, bearer
from workflows.subscription_models import ProcessState
from workflows.subscription_ops import start_subscription_workflow
from workflows.worker import build_worker

APPROVAL = """    - kind: approval
      name: vendor approval
      approvers: vendor_admins
      timeout: P5D
      on_timeout: reject
"""


@pytest.fixture
def approving_settings(orders_temporal_settings: Settings, tmp_path: Path) -> Settings:
    """workflows.yaml with a vendor approval before every cancellation and revocation."""
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    workflows = config / "workflows.yaml"
    text = workflows.read_text()
    for process in ("cancellation", "revocation"):
        marker = f"\n{process}:\n  steps:\n"
        assert marker in text
        text = text.replace(marker, marker + APPROVAL, 1)
    workflows.write_text(text)
    return orders_temporal_settings.model_copy(update={"config_dir": config})


@pytest.fixture
async def approving_api(approving_settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(approving_settings)
    transport = ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(transport=transport, base_url="http://t.test") as client:
        yield client


async def _waits_for_approval(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        state: ProcessState = await handle.query("state", result_type=ProcessState)
    except (RPCError, WorkflowQueryFailedError):  # its first workflow task has not run yet
        return False
    return state.waiting_for_approval


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_cancellation_and_a_revocation_wait_for_the_vendors_decision(
    approving_api: AsyncClient,
    approving_settings: Settings,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_subscription_products(sessions, w)
    await give_permissions(sessions, w, "C1", ["allocate", "cancel", "create", "revoke"])
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    admin, vendor = bearer(w.keys["customer_admin"]), bearer(w.keys["vendor_admin"])
    async with build_worker(dev_env.client, approving_settings, sessions):
        async with sessions() as session:
            subscription = await session.get(Subscription, made.subscription_id)
            assert subscription is not None
            await start_subscription_workflow(dev_env.client, approving_settings.task_queue, session, subscription)

        cancelled = await approving_api.post(f"{path}/cancel", headers=admin)
        assert cancelled.status_code == 202, cancelled.text
        handle = dev_env.client.get_workflow_handle(cancelled.json()["cancellation"]["workflow_id"])

        async def waiting() -> bool:
            return await _waits_for_approval(handle)

        await _until(waiting)
        refused = await approving_api.post(f"{path}/cancellation/approve", headers=admin)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] in ("not-an-approver", "self-approval-not-allowed")
        approved = await approving_api.post(f"{path}/cancellation/approve", json={"comment": "ok"}, headers=vendor)
        assert approved.status_code == 200, approved.text
        assert approved.json()["workflow_id"] == cancelled.json()["cancellation"]["workflow_id"]

        async def shown(field: str, value: str) -> bool:
            return bool((await approving_api.get(path, headers=admin)).json()[field] == value)

        await _until(lambda: shown("status", "non_renewing"))
        late = await approving_api.post(f"{path}/cancellation/reject", headers=vendor)
        assert late.status_code == 409, late.text  # applied: nothing waits any more

        revoking = await approving_api.post(f"{path}/revoke", headers=admin)
        assert revoking.status_code == 202, revoking.text
        revocation = dev_env.client.get_workflow_handle(revoking.json()["workflow_id"])

        async def revocation_waits() -> bool:
            return await _waits_for_approval(revocation)

        await _until(revocation_waits)
        rejected = await approving_api.post(f"{path}/revocation/reject", headers=vendor)
        assert rejected.status_code == 200, rejected.text
        await revocation.result()
        assert (await approving_api.get(path, headers=admin)).json()["status"] == "non_renewing"
