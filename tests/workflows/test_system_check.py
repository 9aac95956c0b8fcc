"""The system-check workflow on both Temporal test servers, with the real activity on a real database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tessera.bootstrap import ensure_vendor
from tessera.catalog.loader import load_catalog
from tessera.catalog.schema import VendorSpec
from tessera.search_attributes import SEARCH_ATTRIBUTES
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import TEST_SECRET
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow
from workflows.worker import build_worker

SHIPPED_PRODUCTS = 4
"""The products of config/catalog.yaml."""


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await load_catalog(session, REPO_ROOT / "config" / "catalog.yaml")
        await ensure_vendor(session, TEST_SECRET, VendorSpec(name="Vendor"))
        await session.commit()


async def _run_check(env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> int:
    queue = f"test-{uuid.uuid4()}"
    worker: Worker = build_worker(env.client, settings.model_copy(update={"task_queue": queue}), sessions)
    async with worker:
        result = await env.client.execute_workflow(
            SystemCheckWorkflow.run, SystemCheckInput(requested_by="test"), id=f"check-{uuid.uuid4()}", task_queue=queue
        )
    return result.product_count


@pytest.mark.usefixtures("seeded")
async def test_check_on_time_skipping_server_reads_the_database(
    time_skipping_env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert await _run_check(time_skipping_env, settings, sessions) == SHIPPED_PRODUCTS


@pytest.mark.usefixtures("seeded")
async def test_check_on_dev_server(
    dev_env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert await _run_check(dev_env, settings, sessions) == SHIPPED_PRODUCTS


async def test_dev_server_has_tesseras_search_attributes(dev_env: WorkflowEnvironment) -> None:
    response = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=dev_env.client.namespace)
    )
    assert set(SEARCH_ATTRIBUTES) <= set(response.custom_attributes)
