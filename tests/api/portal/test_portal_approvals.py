"""The approvals inbox: only the orders the viewer may decide, decisions through the workflow, races told plainly.

Under the shipped workflows.yaml an order above 10 licenses waits for the group admins (the admins of the
order's organization) or a vendor admin; its requester may not decide it, and the reseller's admins decide
only after three days without a decision.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from tessera.models import Membership, Order
from tessera.settings import REPO_ROOT, Settings
from tests.api.people import client_for
from tests.api.portal.browser_forms import browser, csrf_of
from tests.api.portal.orders_world import (
    Sessions,
    add_product,
    create_through_wizard,
    order_id_of,
    portal_user,
    set_quota,
    status_of,
    until,
)
from tests.conftest import RightsWorld
from workflows.worker import build_worker


async def _make_admin(sessions: Sessions, world: RightsWorld, user: str, org: str) -> None:
    async with sessions() as session:
        membership = await session.scalar(
            select(Membership).where(
                Membership.user_id == world.users[user], Membership.organization_id == world.orgs[org]
            )
        )
        assert membership is not None
        membership.role = "admin"
        await session.commit()


async def _decide(client: AsyncClient, order_id: uuid.UUID, decision: str, comment: str = "") -> tuple[int, str]:
    page = await client.get("/approvals")
    response = await client.post(
        "/approvals",
        data={"csrf_token": csrf_of(page.text), "order": str(order_id), "decision": decision, "comment": comment},
    )
    return response.status_code, response.text


async def _waiting(sessions: Sessions, order_id: uuid.UUID) -> None:
    async def check() -> bool:
        return await status_of(sessions, order_id) == "pending_approval"

    await until(check)


async def test_only_approvers_see_an_order_and_the_first_decision_wins(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: Sessions,
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await set_quota(sessions, w, "C1", 50)
    await portal_user(orders_api, sessions, w, "customer_admin")
    async with build_worker(dev_env.client, orders_temporal_settings, sessions):
        order_id = order_id_of(await create_through_wizard(orders_api, w, quantity="11"))
        await _waiting(sessions, order_id)
        waiting = await orders_api.get(f"/orders/{order_id}")
        assert "Waiting for approval" in waiting.text
        assert f'data-poll="/orders/{order_id}/status"' in waiting.text

        # The requester: not in the inbox (four eyes), and a forged decision is refused by the workflow.
        own = await orders_api.get("/approvals")
        assert own.status_code == 200
        assert f'data-id="{order_id}"' not in own.text
        assert "Nothing waits for your decision." in own.text
        status, text = await _decide(orders_api, order_id, "approve")
        assert status == 403
        assert "this order is your own" in text

        for name, expected in (("customer_member", 403), ("reseller_admin", 403), ("sibling_admin", 404)):
            async with browser(orders_api) as other:
                await portal_user(other, sessions, w, name)
                inbox = await other.get("/approvals")
                assert f'data-id="{order_id}"' not in inbox.text, name
                status, text = await _decide(other, order_id, "approve")
                assert status == expected, (name, text)
        assert await status_of(sessions, order_id) == "pending_approval"

        async with browser(orders_api) as vendor:
            await portal_user(vendor, sessions, w, "vendor_admin")
            inbox = await vendor.get("/approvals")
            assert f'data-id="{order_id}"' in inbox.text
            card = inbox.text[inbox.text.index(f'data-id="{order_id}"') :]
            for shown in ("CAD-FIELDS", "<dd>11</dd>", "<dd>C1</dd>", "customer_admin", "group admin approval"):
                assert shown in card, shown
            assert '<label for="f-comment-' in card
            assert ">Approve</button>" in card
            assert ">Reject</button>" in card
            token = csrf_of(inbox.text)
            form = {"csrf_token": token, "order": str(order_id), "decision": "approve", "comment": "fine by us"}
            approved = await vendor.post("/approvals", data=form)
            assert approved.status_code == 303, approved.text
            assert approved.headers["location"] == "/approvals?decided=approved"
            assert "The order is approved." in (await vendor.get(approved.headers["location"])).text
            # The same form again (a reload, or a second approver a moment late): told plainly, nothing changes.
            late = await vendor.post("/approvals", data={**form, "decision": "reject"})
            assert late.status_code == 409
            assert "decided by someone else" in late.text

        async def fulfilled() -> bool:
            return await status_of(sessions, order_id) == "fulfilled"

        await until(fulfilled)
        async with sessions() as session:
            order = await session.get(Order, order_id)
            assert order is not None
            assert [entry["outcome"] for entry in order.trail][:2] == ["started", "approved"]
            assert order.trail[1]["comment"] == "fine by us"
        order_page = await orders_api.get(f"/orders/{order_id}")
        assert "fine by us" in order_page.text


async def test_another_admin_of_the_organization_rejects_through_the_inbox(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: Sessions,
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await set_quota(sessions, w, "C1", 50)
    await _make_admin(sessions, w, "m_C1", "C1")
    await portal_user(orders_api, sessions, w, "customer_admin")
    async with build_worker(dev_env.client, orders_temporal_settings, sessions):
        order_id = order_id_of(await create_through_wizard(orders_api, w, quantity="12"))
        await _waiting(sessions, order_id)
        async with browser(orders_api) as colleague:
            await portal_user(colleague, sessions, w, "m_C1")
            inbox = await colleague.get("/approvals")
            assert f'data-id="{order_id}"' in inbox.text
            no_token = await colleague.post("/approvals", data={"order": str(order_id), "decision": "reject"})
            assert no_token.status_code == 403
            assert await status_of(sessions, order_id) == "pending_approval"
            status, _text = await _decide(colleague, order_id, "reject", "too many")
            assert status == 303

        async def rejected() -> bool:
            return await status_of(sessions, order_id) == "rejected"

        await until(rejected)
        shown = await orders_api.get(f"/orders/{order_id}")
        assert "Rejected" in shown.text
        assert "too many" in shown.text
        assert "data-final" in shown.text


@pytest.fixture
def edited_settings(orders_temporal_settings: Settings, tmp_path: Path) -> Settings:
    """The shipped configuration, in a folder of its own that a test may edit."""
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    return orders_temporal_settings.model_copy(update={"config_dir": config})


async def test_the_inbox_follows_the_steps_an_order_started_with_not_an_edited_file(
    edited_settings: Settings, rights_world: RightsWorld, sessions: Sessions, dev_env: WorkflowEnvironment
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await set_quota(sessions, w, "C1", 50)
    await _make_admin(sessions, w, "m_C1", "C1")
    async with client_for(edited_settings) as portal, build_worker(dev_env.client, edited_settings, sessions):
        await portal_user(portal, sessions, w, "customer_admin")
        order_id = order_id_of(await create_through_wizard(portal, w, quantity="11"))
        await _waiting(sessions, order_id)
        workflows = edited_settings.config_dir / "workflows.yaml"
        text = workflows.read_text()
        assert "name: group admin approval" in text
        assert "approvers: group_admins" in text
        edited = text.replace("name: group admin approval", "name: reseller check", 1)
        workflows.write_text(edited.replace("approvers: group_admins", "approvers: reseller_admins", 1))
        # Orders started from now on ask the reseller; the waiting one still asks C1's admins.
        async with browser(portal) as reseller:
            await portal_user(reseller, sessions, w, "reseller_admin")
            assert f'data-id="{order_id}"' not in (await reseller.get("/approvals")).text
        async with browser(portal) as colleague:
            await portal_user(colleague, sessions, w, "m_C1")
            inbox = await colleague.get("/approvals")
            assert f'data-id="{order_id}"' in inbox.text
            assert "group admin approval" in inbox.text
            status, _text = await _decide(colleague, order_id, "approve")
            assert status == 303
