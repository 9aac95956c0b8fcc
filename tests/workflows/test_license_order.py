"""LicenseOrderWorkflow on the time-skipping server: steps, approvals, timeouts, escalation, idempotency."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.orders import OrderActivities
from tessera.models import Event, Grant, License, Order, Ticket
from tessera.orders.status import OrderStatus
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import (
    APPROVAL,
    CREATE,
    place_order,
    process,
    running_worker,
    start,
    until_waiting,
    workflow_input,
)
from workflows.order_models import ApprovalDecision, DecisionResult, OrderRef

FULL = process(
    CREATE,
    {"kind": "allocate", "to": "requester"},
    {"kind": "visibility", "visible_to": "admins_only"},
    {"kind": "notify", "name": "tell", "template": "order_fulfilled.txt.j2", "to": ["requester"]},
    {"kind": "webhook", "event": "order.fulfilled"},
)


async def _count(sessions: async_sessionmaker[AsyncSession], model: type[License | Ticket], order_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(License).where(License.order_id == order_id)
    if model is Ticket:
        query = select(func.count()).select_from(Ticket).join(License).where(License.order_id == order_id)
    async with sessions() as session:
        return int(await session.scalar(query) or 0)


async def _order(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> Order:
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order


async def _quota_used(sessions: async_sessionmaker[AsyncSession], grant_id: uuid.UUID) -> int:
    async with sessions() as session:
        grant = await session.get(Grant, grant_id)
        assert grant is not None
        return grant.quota_used


def _decision(world: RightsWorld, user: str) -> ApprovalDecision:
    return ApprovalDecision(user_id=str(world.users[user]))


async def test_order_without_approval_runs_every_step(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, FULL))
        state = await handle.result()
    assert state.status == OrderStatus.fulfilled
    assert [(e.step, e.outcome) for e in state.trail if e.outcome == "done"] == [
        ("create_license", "done"),
        ("allocate", "done"),
        ("visibility", "done"),
        ("tell", "done"),
        ("webhook", "done"),
    ]
    stored = await _order(sessions, order.id)
    assert stored.status == "fulfilled"
    assert [entry["step"] for entry in stored.trail][-1] == "webhook"
    assert await _count(sessions, License, order.id) == 3
    assert await _count(sessions, Ticket, order.id) == 3
    async with sessions() as session:
        tickets = (await session.scalars(select(Ticket).join(License).where(License.order_id == order.id))).all()
        assert {t.allocated_user_id for t in tickets} == {rights_world.users["customer_admin"]}
        assert {t.visibility for t in tickets} == {"admins_only"}
        events = (await session.scalars(select(Event).where(Event.order_id == order.id))).all()
    assert sorted(e.kind for e in events) == ["notification", "webhook"]
    published = next(e for e in events if e.kind == "webhook")
    assert (published.name, published.payload["status"]) == ("order.fulfilled", "fulfilled")
    notification = next(e for e in events if e.kind == "notification")
    assert notification.recipients == ["customer.admin@example.com"]
    assert "3 \u00d7 PRO-CAD" in notification.subject
    # The ticket codes never reach the outbox or the workflow's history.
    assert all(code not in notification.body for code in rights_world.codes.values())
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 3


async def test_a_false_condition_skips_the_approval(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, quantity=2)
    steps = process({**APPROVAL, "when": "order.quantity > 10"}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        state = await handle.result()
    assert state.status == OrderStatus.fulfilled
    assert state.trail[0].outcome == "skipped"


async def test_group_admin_approves(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, requester="customer_member")
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(
            time_skipping_env.client, queue, await workflow_input(sessions, order, process(APPROVAL, CREATE))
        )
        await until_waiting(handle)
        assert (await _order(sessions, order.id)).status == "pending_approval"
        decision = ApprovalDecision(user_id=str(rights_world.users["customer_admin"]), comment="budget agreed")
        result = await handle.execute_update("approve", decision, result_type=DecisionResult)
        assert result.status in (OrderStatus.approved, OrderStatus.fulfilled)
        state = await handle.result()
    assert state.status == OrderStatus.fulfilled
    approved = next(e for e in state.trail if e.outcome == "approved")
    assert approved.comment == "budget agreed"
    # The comment is kept in the order's trail in the database too, where the API reads it.
    stored = await _order(sessions, order.id)
    assert [e["comment"] for e in stored.trail if e["outcome"] == "approved"] == ["budget agreed"]
    assert await _count(sessions, License, order.id) == 3


async def test_non_approver_and_second_decision_are_refused(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, requester="customer_member")
    steps = process(APPROVAL, {"kind": "wait", "duration": "P1D"}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        await until_waiting(handle)
        for outsider in ("reseller_member", "sibling_admin"):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update("approve", _decision(rights_world, outsider), result_type=DecisionResult)
            assert isinstance(refused.value.cause, ApplicationError)
            assert refused.value.cause.type == "not_an_approver"
        await handle.execute_update("approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        with pytest.raises(WorkflowUpdateFailedError) as twice:
            await handle.execute_update("reject", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        assert isinstance(twice.value.cause, ApplicationError)
        assert twice.value.cause.type == "not_waiting"
        state = await handle.result()
    assert state.status == OrderStatus.fulfilled


async def test_rejection_creates_nothing_and_gives_the_quota_back(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world)
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 3
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(
            time_skipping_env.client, queue, await workflow_input(sessions, order, process(APPROVAL, CREATE))
        )
        await until_waiting(handle)
        await handle.execute_update("reject", _decision(rights_world, "vendor_admin"), result_type=DecisionResult)
        state = await handle.result()
    assert state.status == OrderStatus.rejected
    assert (await _order(sessions, order.id)).status == "rejected"
    assert await _count(sessions, License, order.id) == 0
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 0


@pytest.mark.parametrize(
    ("on_timeout", "outcome"), [("approve", OrderStatus.fulfilled), ("reject", OrderStatus.rejected)]
)
async def test_timeout_decides_as_configured(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    on_timeout: str,
    outcome: OrderStatus,
) -> None:
    order = await place_order(sessions, rights_world)
    steps = process({**APPROVAL, "on_timeout": on_timeout}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        state = await handle.result()  # the time-skipping server jumps over the three days
    assert state.status == outcome
    assert any(e.outcome == "timed_out" for e in state.trail)


async def test_escalation_hands_the_decision_to_the_next_approvers(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world)
    steps = process({**APPROVAL, "timeout": "PT1H", "on_timeout": "escalate", "escalate_to": "reseller_admins"}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        await until_waiting(handle)
        await time_skipping_env.sleep(timedelta(hours=1, minutes=1))
        await until_waiting(handle, rounds=2)
        with pytest.raises(WorkflowUpdateFailedError):  # the customer's admin had their turn
            await handle.execute_update(
                "approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult
            )
        await handle.execute_update("approve", _decision(rights_world, "reseller_admin"), result_type=DecisionResult)
        state = await handle.result()
    assert state.status == OrderStatus.fulfilled
    assert [e.outcome for e in state.trail if e.kind == "approval"] == ["started", "timed_out", "escalated", "approved"]
    async with sessions() as session:
        notes = (await session.scalars(select(Event).where(Event.order_id == order.id))).all()
    assert any("(escalated)" in note.subject for note in notes)


async def test_escalation_that_times_out_too_is_rejected(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world)
    steps = process({**APPROVAL, "on_timeout": "escalate", "escalate_to": "vendor_admins"}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        state = await handle.result()
    assert state.status == OrderStatus.rejected
    assert [e.outcome for e in state.trail if e.kind == "approval"] == [
        "started",
        "timed_out",
        "escalated",
        "timed_out",
    ]


async def test_activities_called_twice_create_nothing_more(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    order = await place_order(sessions, rights_world)
    activities = OrderActivities(sessions, TEST_SECRET, settings.config_dir / "templates", settings.portal_url)
    environment = ActivityEnvironment()  # as a worker runs them: heartbeats go somewhere
    first = await environment.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    second = await environment.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    assert first == second
    assert first.created == 3
    assert await _count(sessions, Ticket, order.id) == 3
    await environment.run(activities.release_quota, OrderRef(order_id=str(order.id)))
    await environment.run(activities.release_quota, OrderRef(order_id=str(order.id)))
    # All three licenses exist, so nothing is given back, and a second release gives back nothing either.
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 3
