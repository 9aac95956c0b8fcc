"""Order intake below the API: field and module checks, atomic quota reservation, the config cache, resume."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.fields import FieldSpec
from tessera.models import Grant, Order, Product
from tessera.orders.config import WorkflowsConfigCache
from tessera.orders.errors import QuotaExceeded, WorkflowsConfigInvalid
from tessera.orders.intake import check_fields, check_modules, reserve_quota
from tessera.settings import REPO_ROOT, Settings
from tests.api.test_orders_api import FIELDS, MODULES, order_body, post_order
from tests.conftest import RightsWorld
from workflows.client_ops import resume_orders


def _product() -> Product:
    fields = [FieldSpec.model_validate(spec).model_dump(mode="json") for spec in FIELDS]
    return Product(code="P", fields=fields, modules=MODULES)


def test_fields_get_their_defaults_and_canonical_values() -> None:
    values, issues = check_fields(_product(), {"seats": 3, "start": "2031-01-31"})
    assert issues == []
    assert values == {"trial_days": 30, "seats": 3, "start": "2031-01-31", "support": False}


def test_every_bad_field_is_reported_at_once() -> None:
    _values, issues = check_fields(_product(), {"trial_days": 31, "colour": "red", "start": "soon"})
    assert sorted(issue.field for issue in issues) == [
        "fields.colour",
        "fields.seats",
        "fields.start",
        "fields.trial_days",
    ]
    unknown = next(issue for issue in issues if issue.field == "fields.colour")
    assert "trial_days, seats, start, note, support" in unknown.message


def test_modules_default_to_those_switched_on() -> None:
    assert check_modules(_product(), None) == (["BASE"], [])
    assert check_modules(_product(), []) == ([], [])
    modules, issues = check_modules(_product(), ["EXTRA", "GONE"])
    assert [issue.field for issue in issues] == ["modules.1"]
    assert "BASE, EXTRA" in issues[0].message
    assert modules == ["EXTRA", "GONE"]


async def test_concurrent_reservations_never_exceed_the_quota(
    rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    grant_id = rights_world.grants["C2"]  # quota 5, nothing delegated

    async def reserve() -> bool:
        async with sessions() as session:
            try:
                await reserve_quota(session, grant_id, 1)
            except QuotaExceeded:
                await session.rollback()
                return False
            await session.commit()
            return True

    results = await asyncio.gather(*(reserve() for _ in range(20)))
    assert results.count(True) == 5
    async with sessions() as session:
        grant = await session.get(Grant, grant_id)
        assert grant is not None
        assert grant.quota_used == 5


async def test_delegated_quota_counts_as_used(
    rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        # R1 holds 100 and delegated 10 to C1 and 5 to C2: 85 are its own.
        with pytest.raises(QuotaExceeded, match="85 more"):
            await reserve_quota(session, rights_world.grants["R1"], 86)
        await session.rollback()
        await reserve_quota(session, rights_world.grants["R1"], 85)
        await session.commit()


def test_the_config_cache_reloads_an_edited_file_and_reports_a_broken_one(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config_dir)
    cache = WorkflowsConfigCache(Settings(config_dir=config_dir, var_dir=tmp_path / "var"))
    first = cache.get()
    assert cache.get() is first  # unchanged files are not read again
    workflows = config_dir / "workflows.yaml"
    good = workflows.read_text()
    workflows.write_text(good.replace("timeout: P3D", "timeout: P4D", 1))
    edited = cache.get()
    assert edited.version_hash() != first.version_hash()
    workflows.write_text(good.replace("kind: create_license", "kind: create_licence", 1))
    with pytest.raises(WorkflowsConfigInvalid) as refused:
        cache.get()
    assert refused.value.status == 503
    assert any("create_licence" in issue.message for issue in refused.value.issues)
    workflows.unlink()
    with pytest.raises(WorkflowsConfigInvalid, match="cannot read"):
        cache.get()
    workflows.write_text(good)
    assert cache.get().version_hash() == first.version_hash()


async def test_resume_starts_each_order_stored_while_temporal_was_down_once(
    api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    orders_temporal_settings: Settings,
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    for _ in range(2):
        response = await post_order(api, w, "customer_admin", order_body(w))
        assert response.status_code == 503
    assert await resume_orders(orders_temporal_settings, dev_env.client) == 2
    assert await resume_orders(orders_temporal_settings, dev_env.client) == 0
    async with sessions() as session:
        orders = (await session.scalars(select(Order).where(Order.idempotency_key.is_not(None)))).all()
    assert len(orders) == 2
    for order in orders:
        assert order.workflow_started_at is not None
        described = await dev_env.client.get_workflow_handle(f"order-{order.id}").describe()
        assert described.workflow_type == "LicenseOrderWorkflow"
