"""workflows.yaml is re-read when it changes: orders accepted afterwards follow the edit, earlier ones keep theirs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.models import Order
from tessera.settings import REPO_ROOT, Settings
from tests.api.test_orders_api import ORDERS, order_body, post_order
from tests.conftest import RightsWorld, bearer


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
