"""A subscription from order to cancellation with a real worker: the API records, the workflows act."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tessera.models import Subscription
from tessera.settings import Settings
from tests.api.subscriptions import SUBSCRIPTIONS, add_subscription_products, give_permissions
from tests.api.test_orders_api import order_body, post_order
from tests.conftest import RightsWorld, bearer
from workflows.worker import build_worker


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ordered_cancelled_uncancelled_and_revoked(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_subscription_products(sessions, w)
    await give_permissions(sessions, w, "C1", ["allocate", "cancel", "create", "revoke"])
    admin = bearer(w.keys["customer_admin"])
    async with build_worker(dev_env.client, orders_temporal_settings, sessions):
        ordered = await post_order(orders_api, w, "customer_admin", order_body(w, product="SUB-CAD", quantity=2))
        assert ordered.status_code == 202, ordered.text
        order_id = uuid.UUID(ordered.json()["id"])

        async def subscription_id() -> uuid.UUID | None:
            async with sessions() as session:
                return await session.scalar(select(Subscription.id).where(Subscription.order_id == order_id))

        async def exists() -> bool:
            return await subscription_id() is not None

        await _until(exists)
        found = await subscription_id()
        path = f"{SUBSCRIPTIONS}/{found}"
        shown = (await orders_api.get(path, headers=admin)).json()
        assert shown["status"] == "active"
        await _until(lambda: _running(dev_env, f"subscription-{found}"))

        cancelled = await orders_api.post(f"{path}/cancel", json={"reason": "budget"}, headers=admin)
        assert cancelled.status_code == 202, cancelled.text

        async def status_is(expected: str) -> bool:
            return bool((await orders_api.get(path, headers=admin)).json()["status"] == expected)

        async def cancellation_applied() -> bool:
            return bool((await orders_api.get(path, headers=admin)).json()["cancellations"][0]["status"] == "applied")

        # The request makes it non-renewing at once; the cancellation workflow's `cancel` step applies it.
        await _until(lambda: status_is("non_renewing"))
        await _until(cancellation_applied)
        shown = (await orders_api.get(path, headers=admin)).json()
        assert shown["cancellations"][0]["status"] == "applied"
        assert shown["effective_end_at"] == cancelled.json()["effective_end_at"]

        withdrawn = await orders_api.post(f"{path}/uncancel", headers=admin)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["workflow_notified"] is True
        assert withdrawn.json()["subscription"]["status"] == "active"

        revoked = await orders_api.post(f"{path}/revoke", headers=admin)
        assert revoked.status_code == 202, revoked.text
        await _until(lambda: status_is("revoked"))
        licenses = await orders_api.get("/api/v1/licenses", params={"order_id": str(order_id)}, headers=admin)
        assert {item["status"] for item in licenses.json()["items"]} == {"revoked"}
        again = await orders_api.post(f"{path}/revoke", headers=admin)
        assert again.status_code == 409
        assert again.json()["code"] == "already-revoked"


async def _running(dev_env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        await dev_env.client.get_workflow_handle(workflow_id).describe()
    except RPCError:  # not started yet
        return False
    return True
