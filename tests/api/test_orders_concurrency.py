"""Two races of order intake, fired through the ASGI app with real workflow starts: the database decides."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import Grant, License, Order
from tessera.settings import Settings
from tests.api.test_orders_api import order_body, post_order, quota_used
from tests.conftest import RightsWorld
from workflows.order_models import OrderState
from workflows.worker import build_worker

CONCURRENT = 50


async def _workflows_of(dev_env: WorkflowEnvironment, organization_id: uuid.UUID) -> int:
    query = f"WorkflowType = 'LicenseOrderWorkflow' AND TesseraCustomer = '{organization_id}'"
    return (await dev_env.client.count_workflows(query)).count


async def _await_workflows(dev_env: WorkflowEnvironment, organization_id: uuid.UUID, expected: int) -> int:
    """Visibility is eventually consistent: wait until `expected` show up, then a little longer for extras."""
    for _ in range(100):
        if await _workflows_of(dev_env, organization_id) >= expected:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    return await _workflows_of(dev_env, organization_id)


async def test_fifty_identical_requests_make_one_order_and_one_workflow(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    body = order_body(w, "C2", quantity=3)
    responses = await asyncio.gather(
        *(post_order(orders_api, w, "sibling_admin", body, key="one-key") for _ in range(CONCURRENT))
    )
    assert Counter(response.status_code for response in responses) == {202: CONCURRENT}, [
        response.text for response in responses if response.status_code != 202
    ]
    assert len({response.json()["id"] for response in responses}) == 1
    assert all(response.json()["workflow_started"] for response in responses)
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count()).where(Order.organization_id == w.orgs["C2"], Order.idempotency_key == "one-key")
        )
    assert stored == 1
    assert await quota_used(sessions, w.grants["C2"]) == 3
    assert await _await_workflows(dev_env, w.orgs["C2"], 1) == 1
    # Run that one workflow: it creates exactly the 3 licenses ordered, once.
    async with build_worker(dev_env.client, orders_temporal_settings, sessions):
        handle = dev_env.client.get_workflow_handle(responses[0].json()["workflow_id"], result_type=OrderState)
        state = await asyncio.wait_for(handle.result(), timeout=60)
    assert state.status == "fulfilled"
    async with sessions() as session:
        licenses = await session.scalar(
            select(func.count()).select_from(License).where(License.order_id == uuid.UUID(responses[0].json()["id"]))
        )
    assert licenses == 3


async def test_fifty_orders_against_a_quota_of_ten_accept_exactly_ten(
    orders_api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == w.grants["C2"]).values(quota=10))
        await session.commit()
    responses = await asyncio.gather(
        *(post_order(orders_api, w, "sibling_admin", order_body(w, "C2")) for _ in range(CONCURRENT))
    )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {202: 10, 403: 40}, [r.text for r in responses if r.status_code not in (202, 403)]
    assert {r.json()["code"] for r in responses if r.status_code == 403} == {"quota-exceeded"}
    assert await quota_used(sessions, w.grants["C2"]) == 10
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count()).where(Order.organization_id == w.orgs["C2"], Order.idempotency_key.is_not(None))
        )
    assert stored == 10
    assert await _await_workflows(dev_env, w.orgs["C2"], 10) == 10
