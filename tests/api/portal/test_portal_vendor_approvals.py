"""Cancellations and revocations waiting at an approval step are shown as such; approvers decide them there."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.models import Subscription
from tessera.settings import REPO_ROOT, Settings
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, sign_in_portal, submit
from tests.api.subscriptions import add_subscription_products, give_permissions, make_subscription
from tests.conftest import RightsWorld
from workflows.subscription_ops import start_subscription_workflow
from workflows.worker import build_worker

Sessions = async_sessionmaker[AsyncSession]
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
async def portal(approving_settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(approving_settings)
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://tessera.test", timeout=60) as client,
    ):
        yield client


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_cancellation_waiting_for_approval_is_shown_and_decided_by_its_approver(
    portal: AsyncClient,
    approving_settings: Settings,
    rights_world: RightsWorld,
    sessions: Sessions,
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_subscription_products(sessions, w)
    await give_permissions(sessions, w, "C1", ["allocate", "cancel", "create", "revoke"])
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    for email in ("customer.admin@example.com", "admin@vendor.example"):
        await give_password(sessions, email)
    page = f"/subscriptions/{made.subscription_id}"
    async with build_worker(dev_env.client, approving_settings, sessions):
        async with sessions() as session:
            subscription = await session.get(Subscription, made.subscription_id)
            assert subscription is not None
            await start_subscription_workflow(dev_env.client, approving_settings.task_queue, session, subscription)
        await sign_in_portal(portal, "customer.admin@example.com")
        assert (await submit(portal, f"{page}/cancel", term="1")).status_code == 303

        async def shown_waiting() -> bool:
            return "Waiting for approval" in (await portal.get(page)).text

        await _until(shown_waiting)
        # The requester is no approver: the workflow's validator refuses, the page says so.
        refused = await submit(portal, page, f"{page}/cancellation", decision="approve", comment="mine")
        assert refused.status_code == 403, refused.text
        async with browser(portal) as vendor:
            await sign_in_portal(vendor, "admin@vendor.example")
            assert "The cancellation waits for approval" in (await vendor.get(page)).text
            approved = await submit(vendor, page, f"{page}/cancellation", decision="approve", comment="ok")
            assert approved.status_code == 303, approved.text
            assert "The cancellation is approved." in (await vendor.get(approved.headers["location"])).text

        async def applied() -> bool:
            return "Applied" in (await portal.get(page)).text

        await _until(applied)
        assert "Waiting for approval" not in (await portal.get(page)).text

        # A revocation waits in the same way; the vendor rejects it and the subscription goes on.
        revoking = await submit(portal, f"{page}/revoke", f"{page}/revoke", reason="test")
        assert revoking.status_code == 303

        async def revocation_waits() -> bool:
            return "Revocation waits for approval" in (await portal.get(page)).text

        await _until(revocation_waits)
        assert "Revoke subscription" not in (await portal.get(page)).text
        async with browser(portal) as vendor:
            await sign_in_portal(vendor, "admin@vendor.example")
            rejected = await submit(vendor, page, f"{page}/revocation", decision="reject", revocation_comment="no")
            assert rejected.status_code == 303, rejected.text
            assert "The revocation is rejected" in (await vendor.get(rejected.headers["location"])).text

        async def revocation_done() -> bool:
            return "Revocation waits for approval" not in (await portal.get(page)).text

        await _until(revocation_done)
        async with sessions() as session:
            subscription = await session.get(Subscription, made.subscription_id)
            assert subscription is not None
            assert subscription.status == "non_renewing"
