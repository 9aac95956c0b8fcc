"""Which step a waiting order asks, read from its mirrored trail: the approvers, or those it escalated to.

These orders are written as their workflow would have left them, so no Temporal server is involved: the inbox
needs none while workflows.yaml is unchanged, and a decision sent while Temporal is away says so.
"""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from tessera.models import Order, utcnow
from tessera.orders.config import workflows_config
from tessera.orders.launch import order_start
from tessera.settings import Settings
from tests.api.portal.browser_forms import browser, csrf_of
from tests.api.portal.orders_world import Sessions, portal_user
from tests.conftest import RightsWorld

STEP = "group admin approval"


async def _waiting_order(
    sessions: Sessions, settings: Settings, world: RightsWorld, outcomes: list[str], requester: str = "customer_admin"
) -> uuid.UUID:
    trail = [
        {"step": STEP, "kind": "approval", "outcome": outcome, "at": utcnow().isoformat(), "detail": "", "comment": ""}
        for outcome in outcomes
    ]
    async with sessions() as session:
        order = Order(
            organization_id=world.orgs["C1"],
            product_id=world.product_id,
            quantity=11,
            allocation="requester",
            visibility="all_members",
            status="pending_approval",
            requested_by_user_id=world.users[requester],
            trail=trail,
        )
        session.add(order)
        await session.flush()
        order.process_version = (await order_start(session, order, workflows_config(settings))).process.version
        await session.commit()
        return order.id


async def _sees(api: AsyncClient, sessions: Sessions, world: RightsWorld, name: str, order_id: uuid.UUID) -> bool:
    async with browser(api) as person:
        await portal_user(person, sessions, world, name)
        inbox = await person.get("/approvals")
        assert inbox.status_code == 200
        return f'data-id="{order_id}"' in inbox.text


async def test_a_waiting_order_asks_the_group_admins_then_after_escalation_the_reseller(
    api: AsyncClient, settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    first = await _waiting_order(sessions, settings, w, ["started"], requester="reseller_admin")
    escalated = await _waiting_order(sessions, settings, w, ["started", "timed_out", "escalated"])
    assert await _sees(api, sessions, w, "customer_admin", first)
    assert not await _sees(api, sessions, w, "reseller_admin", first)  # asked: C1's admins (and it is theirs)
    assert not await _sees(api, sessions, w, "customer_admin", escalated)  # its own, and no longer C1's turn
    assert await _sees(api, sessions, w, "reseller_admin", escalated)
    for name in ("customer_member", "sibling_admin", "foreign_admin", "vendor_staff"):
        assert not await _sees(api, sessions, w, name, first), name
        assert not await _sees(api, sessions, w, name, escalated), name
    assert await _sees(api, sessions, w, "vendor_admin", first)
    assert await _sees(api, sessions, w, "vendor_admin", escalated)


async def test_a_decision_while_temporal_is_away_and_malformed_decisions_are_refused(
    api: AsyncClient, settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    order_id = await _waiting_order(sessions, settings, w, ["started"])
    await portal_user(api, sessions, w, "vendor_admin")
    token = csrf_of((await api.get("/approvals")).text)
    form = {"csrf_token": token, "order": str(order_id), "decision": "approve", "comment": "ok"}
    away = await api.post("/approvals", data=form)
    assert away.status_code == 503
    assert "did not answer" in away.text
    assert (await api.post("/approvals", data={**form, "decision": "maybe"})).status_code == 422
    assert (await api.post("/approvals", data={**form, "order": "x"})).status_code == 404
    assert (await api.post("/approvals", data={**form, "order": str(uuid.uuid4())})).status_code == 404
    assert (await api.post("/approvals", data={**form, "comment": "x" * 2001})).status_code == 422
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        assert order.status == "pending_approval"
