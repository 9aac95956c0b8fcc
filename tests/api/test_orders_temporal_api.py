"""Orders when Temporal is down (nothing accepted is lost) and decisions on waiting orders through the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.apikeys import create_api_key
from tessera.models import Order
from tessera.settings import Settings
from tests.api.test_orders_api import ORDERS, order_body, post_order, quota_used
from tests.conftest import TEST_SECRET, RightsWorld, bearer
from workflows.worker import build_worker


async def test_an_order_is_kept_while_temporal_is_down_and_started_by_the_retry(
    api: AsyncClient,
    orders_api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    body = order_body(w, quantity=2)
    down = await post_order(api, w, "customer_admin", body, key="retry-me")
    assert down.status_code == 503
    assert down.json()["code"] == "workflow-not-started"
    assert "same Idempotency-Key" in down.json()["detail"]
    listed = (await api.get(ORDERS, params={"status": "accepted"}, headers=bearer(w.keys["customer_admin"]))).json()[
        "items"
    ]
    assert [(item["status"], item["workflow_started"]) for item in listed] == [("accepted", False)]
    assert await quota_used(sessions, w.grants["C1"]) == 2

    up = await post_order(orders_api, w, "customer_admin", body, key="retry-me")
    assert up.status_code == 202, up.text
    assert up.json()["id"] == listed[0]["id"]
    assert up.json()["workflow_started"] is True
    assert await quota_used(sessions, w.grants["C1"]) == 2
    described = await dev_env.client.get_workflow_handle(f"order-{up.json()['id']}").describe()
    assert described.workflow_type == "LicenseOrderWorkflow"


async def test_a_service_account_orders_but_cannot_decide(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as session:
        _key, token = await create_api_key(session, TEST_SECRET, name="erp", organization_id=w.orgs["C1"])
        await session.commit()
    response = await orders_api.post(
        ORDERS, json=order_body(w), headers={**bearer(token), "Idempotency-Key": "erp-line-1"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["requested_by_user_id"] is None
    decided = await orders_api.post(f"{ORDERS}/{response.json()['id']}/approve", headers=bearer(token))
    assert decided.status_code == 403
    assert "service account" in decided.json()["detail"]


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_approvers_decide_once_through_the_api(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    """The shipped workflows.yaml asks the group admins to approve orders above 10 licenses."""
    w = rights_world
    worker = build_worker(dev_env.client, orders_temporal_settings, sessions)
    async with worker:
        response = await post_order(orders_api, w, "reseller_admin", order_body(w, "C3", quantity=11))
        assert response.status_code == 422  # C3 is another reseller's customer
        response = await post_order(orders_api, w, "vendor_admin", order_body(w, quantity=11))
        assert response.status_code == 202, response.text
        order_id = response.json()["id"]

        async def waiting() -> bool:
            async with sessions() as session:
                order = await session.get(Order, uuid.UUID(order_id))
                return order is not None and order.status == "pending_approval"

        await _until(waiting)
        path = f"{ORDERS}/{order_id}"
        outsider = await orders_api.post(f"{path}/approve", headers=bearer(w.keys["sibling_admin"]))
        assert outsider.status_code == 404
        member = await orders_api.post(f"{path}/approve", headers=bearer(w.keys["customer_member"]))
        assert member.status_code == 403, member.text
        assert member.json()["code"] == "not-an-approver"
        approved = await orders_api.post(
            f"{path}/approve", json={"comment": "fine"}, headers=bearer(w.keys["customer_admin"])
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] in ("approved", "fulfilled")
        twice = await orders_api.post(f"{path}/reject", headers=bearer(w.keys["customer_admin"]))
        assert twice.status_code == 409, twice.text

        async def fulfilled() -> bool:
            shown = (await orders_api.get(path, headers=bearer(w.keys["customer_admin"]))).json()
            return bool(shown["status"] == "fulfilled")

        await _until(fulfilled)
        shown = (await orders_api.get(path, headers=bearer(w.keys["customer_admin"]))).json()
        assert len(shown["licenses"]) == 11
        assert all(item["ticket"] is not None and "code" not in item["ticket"] for item in shown["licenses"])
        assert [entry["outcome"] for entry in shown["trail"]][:2] == ["started", "approved"]
        assert shown["trail"][1]["comment"] == "fine"
        # The requester, a vendor admin, is no member of C1: the tickets went to C1, visible to all its members.
        as_member = (await orders_api.get(path, headers=bearer(w.keys["customer_member"]))).json()
        assert len(as_member["licenses"]) == 11
        assert {item["ticket"]["allocated_user_id"] for item in as_member["licenses"]} == {None}
        licenses = await orders_api.get(
            "/api/v1/licenses", params={"order_id": order_id}, headers=bearer(w.keys["customer_admin"])
        )
        assert len(licenses.json()["items"]) == 11


async def test_the_order_does_what_the_caller_asked_and_its_requester_cannot_approve_it(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    worker = build_worker(dev_env.client, orders_temporal_settings, sessions)
    async with worker:
        body = order_body(w, quantity=2, allocation="user", user_id=str(w.users["customer_member"]))
        small = await post_order(orders_api, w, "customer_admin", {**body, "visibility": "admins_only"})
        assert small.status_code == 202, small.text
        big = await post_order(orders_api, w, "reseller_admin", order_body(w, "R1", quantity=11))
        assert big.status_code == 202, big.text
        small_path, big_path = f"{ORDERS}/{small.json()['id']}", f"{ORDERS}/{big.json()['id']}"

        async def status_is(path: str, status: str) -> bool:
            shown = (await orders_api.get(path, headers=bearer(w.keys["vendor_admin"]))).json()
            return bool(shown["status"] == status)

        await _until(lambda: status_is(small_path, "fulfilled"))
        shown = (await orders_api.get(small_path, headers=bearer(w.keys["customer_admin"]))).json()
        tickets = [item["ticket"] for item in shown["licenses"]]
        assert [(t["allocated_user_id"], t["visibility"]) for t in tickets] == [
            (str(w.users["customer_member"]), "admins_only")
        ] * 2

        await _until(lambda: status_is(big_path, "pending_approval"))
        own = await orders_api.post(f"{big_path}/approve", headers=bearer(w.keys["reseller_admin"]))
        assert own.status_code == 403, own.text
        assert own.json()["code"] == "self-approval-not-allowed"
        other = await orders_api.post(f"{big_path}/approve", headers=bearer(w.keys["vendor_admin"]))
        assert other.status_code == 200, other.text
        await _until(lambda: status_is(big_path, "fulfilled"))
