"""workflows.yaml is re-read when it changes: orders accepted afterwards follow the edit, earlier ones keep theirs."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.models import Order
from tessera.settings import REPO_ROOT, Settings
from tests.api.test_orders_api import ORDERS, order_body, post_order
from tests.conftest import RightsWorld, bearer
from workflows.worker import build_worker


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    return target


@pytest.fixture
async def edited_api(orders_temporal_settings: Settings, config_copy: Path) -> AsyncIterator[AsyncClient]:
    app = create_app(orders_temporal_settings.model_copy(update={"config_dir": config_copy}))
    transport = ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(transport=transport, base_url="http://t.test") as client:
        yield client


async def test_an_edit_changes_only_orders_accepted_afterwards(
    edited_api: AsyncClient, config_copy: Path, rights_world: RightsWorld
) -> None:
    w = rights_world
    before = await post_order(edited_api, w, "customer_admin", order_body(w))
    assert before.status_code == 202, before.text
    workflows = config_copy / "workflows.yaml"
    text = workflows.read_text()
    assert "timeout: P3D" in text
    workflows.write_text(text.replace("timeout: P3D", "timeout: P5D", 1))
    after = await post_order(edited_api, w, "customer_admin", order_body(w))
    assert after.status_code == 202, after.text
    assert after.json()["process_version"] != before.json()["process_version"]
    shown = await edited_api.get(f"{ORDERS}/{before.json()['id']}", headers=bearer(w.keys["customer_admin"]))
    assert shown.json()["process_version"] == before.json()["process_version"]


async def test_a_broken_edit_refuses_orders_until_it_is_fixed(
    edited_api: AsyncClient, config_copy: Path, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    workflows = config_copy / "workflows.yaml"
    good = workflows.read_text()
    workflows.write_text(good.replace("kind: create_license", "kind: create_licence", 1))
    refused = await post_order(edited_api, w, "customer_admin", order_body(w))
    assert refused.status_code == 503
    assert refused.json()["code"] == "workflows-config-invalid"
    assert any("create_licence" in error["message"] for error in refused.json()["errors"])
    assert any("workflows.yaml:" in error["message"] for error in refused.json()["errors"])
    async with sessions() as session:
        assert await session.scalar(select(func.count()).where(Order.idempotency_key.is_not(None))) == 0
    workflows.write_text(good)
    accepted = await post_order(edited_api, w, "customer_admin", order_body(w))
    assert accepted.status_code == 202, accepted.text


async def test_an_order_waiting_for_approval_keeps_its_steps_after_an_edit(
    edited_api: AsyncClient,
    config_copy: Path,
    rights_world: RightsWorld,
    orders_temporal_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    """The shipped file asks group admins to approve orders above 10; the edit drops that approval."""
    w = rights_world
    settings = orders_temporal_settings.model_copy(update={"config_dir": config_copy})
    async with build_worker(dev_env.client, settings, sessions):
        waiting = await post_order(edited_api, w, "vendor_admin", order_body(w, quantity=11))
        assert waiting.status_code == 202, waiting.text
        first = waiting.json()["id"]
        await _until_status(edited_api, w, first, "pending_approval")

        workflows = config_copy / "workflows.yaml"
        text = workflows.read_text()
        assert "when: order.quantity > 10" in text
        workflows.write_text(text.replace("when: order.quantity > 10", "when: order.quantity > 1000", 1))

        later = await post_order(edited_api, w, "vendor_admin", order_body(w, quantity=11))
        assert later.status_code == 202, later.text
        second = later.json()["id"]
        shown = await _until_status(edited_api, w, second, "fulfilled")
        assert shown["trail"][0]["outcome"] == "skipped"  # the new file: no approval for 11 licenses
        assert (await _shown(edited_api, w, first))["status"] == "pending_approval"  # the old one still waits

        decided = await edited_api.post(f"{ORDERS}/{first}/approve", headers=bearer(w.keys["customer_admin"]))
        assert decided.status_code == 200, decided.text
        shown = await _until_status(edited_api, w, first, "fulfilled")
        assert [entry["outcome"] for entry in shown["trail"]][:2] == ["started", "approved"]
        assert shown["process_version"] != later.json()["process_version"]


async def _shown(api: AsyncClient, world: RightsWorld, order_id: str) -> dict[str, Any]:
    response = await api.get(f"{ORDERS}/{order_id}", headers=bearer(world.keys["customer_admin"]))
    body: dict[str, Any] = response.json()
    return body


async def _until_status(api: AsyncClient, world: RightsWorld, order_id: str, status: str) -> dict[str, Any]:
    for _ in range(300):  # bounded: 30 s at most
        shown = await _shown(api, world, order_id)
        if shown["status"] == status:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} never reached {status}; last seen {shown['status']}")
