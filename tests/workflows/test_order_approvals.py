"""Approvals are decided by who may decide now, never by the requester alone, with templates frozen at the start."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, Grant, License, Membership, Role, utcnow
from tessera.orders.status import OrderStatus
from tessera.processes import resolve_steps
from tessera.processes.startup import load_configured_workflows
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import RightsWorld
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
from workflows.license_order import LicenseOrderWorkflow
from workflows.order_models import ApprovalDecision, DecisionResult


def _decision(world: RightsWorld, user: str) -> ApprovalDecision:
    return ApprovalDecision(user_id=str(world.users[user]))


async def _refusal(call: asyncio.Future[DecisionResult] | object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await call  # type: ignore[misc]
    assert isinstance(refused.value.cause, ApplicationError)
    return str(refused.value.cause.type)


async def test_an_admin_demoted_during_the_wait_can_no_longer_decide(
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
        # The customer's admin was an approver when the approval started; now they are a member only.
        async with sessions() as session:
            await session.execute(
                update(Membership)
                .where(Membership.user_id == rights_world.users["customer_admin"])
                .values(role=Role.member)
            )
            await session.commit()
        demoted = handle.execute_update(
            "approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult
        )
        assert await _refusal(demoted) == "not_an_approver"
        # With no admin left in the customer, its reseller's admins are the group admins now.
        await handle.execute_update("approve", _decision(rights_world, "reseller_admin"), result_type=DecisionResult)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.fulfilled


async def test_an_admin_removed_during_the_wait_cannot_reject_either(
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
        async with sessions() as session:
            await session.execute(delete(Membership).where(Membership.user_id == rights_world.users["customer_admin"]))
            await session.commit()
        removed = handle.execute_update("reject", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        assert await _refusal(removed) == "not_an_approver"
        state = await handle.query(LicenseOrderWorkflow.state)
        assert state.waiting_for_approval  # still waiting for someone who may decide
        await handle.execute_update("reject", _decision(rights_world, "vendor_admin"), result_type=DecisionResult)
        final = await asyncio.wait_for(handle.result(), 60)
    assert final.status == OrderStatus.rejected


async def test_the_requester_cannot_approve_their_own_order(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, requester="customer_admin")
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(
            time_skipping_env.client, queue, await workflow_input(sessions, order, process(APPROVAL, CREATE))
        )
        await until_waiting(handle)
        own = handle.execute_update("approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        assert await _refusal(own) == "self_approval"
        # A second pair of eyes can.
        await handle.execute_update("approve", _decision(rights_world, "vendor_admin"), result_type=DecisionResult)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.fulfilled


async def test_a_step_can_allow_self_approval(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, requester="customer_admin")
    steps = process({**APPROVAL, "allow_self_approval": True}, CREATE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        await until_waiting(handle)
        await handle.execute_update("approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.fulfilled


async def test_an_order_keeps_the_template_text_it_started_with(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config_dir)
    local = settings.model_copy(update={"config_dir": config_dir})
    template = config_dir / "templates" / "order_fulfilled.txt.j2"
    template.write_text("Subject: as it was when ordered\n\nOld text for {{ order.quantity }} licenses.\n")
    config = load_configured_workflows(local)
    steps = resolve_steps(config, "license_order", product_group="CAD", product="PRO-CAD")
    steps = steps.model_copy(update={"steps": [process(APPROVAL).steps[0], *steps.steps[1:]]})
    order = await place_order(sessions, rights_world, requester="customer_member", quantity=2)
    async with running_worker(time_skipping_env.client, local, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        await until_waiting(handle)
        # An analyst rewrites the template (to one that would not even render) while the order waits.
        template.write_text("Subject: edited later {{ order.nonexistent }}\n")
        await handle.execute_update("approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.fulfilled
    async with sessions() as session:
        notes = (
            await session.scalars(
                select(Event).where(Event.order_id == order.id, Event.name == "order_fulfilled.txt.j2")
            )
        ).all()
    assert [(note.subject, note.body) for note in notes] == [("as it was when ordered", "Old text for 2 licenses.\n")]


async def test_two_approvers_deciding_at_once_make_one_decision(
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
        outcomes = await asyncio.gather(
            handle.execute_update("approve", _decision(rights_world, "customer_admin"), result_type=DecisionResult),
            handle.execute_update("reject", _decision(rights_world, "vendor_admin"), result_type=DecisionResult),
            handle.execute_update("approve", _decision(rights_world, "vendor_admin"), result_type=DecisionResult),
            return_exceptions=True,
        )
        state = await asyncio.wait_for(handle.result(), 60)
    accepted = [outcome for outcome in outcomes if isinstance(outcome, DecisionResult)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, WorkflowUpdateFailedError)]
    assert (len(accepted), len(refused)) == (1, 2), outcomes
    assert all(isinstance(r.cause, ApplicationError) and r.cause.type == "not_waiting" for r in refused)
    decisions = [entry.outcome for entry in state.trail if entry.outcome in ("approved", "rejected")]
    assert len(decisions) == 1
    assert state.status == (OrderStatus.fulfilled if decisions == ["approved"] else OrderStatus.rejected)


async def test_an_approval_after_the_grant_was_withdrawn_fails_the_order_and_gives_the_quota_back(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, requester="customer_member", quantity=2)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(
            time_skipping_env.client, queue, await workflow_input(sessions, order, process(APPROVAL, CREATE))
        )
        await until_waiting(handle)
        # While the order waits, the vendor ends the reseller's grant, and with it the customer's.
        async with sessions() as session:
            await session.execute(
                update(Grant)
                .where(Grant.id.in_([rights_world.grants["R1"], rights_world.grants["C1"]]))
                .values(withdrawn_at=utcnow())
            )
            await session.commit()
        await handle.execute_update("approve", _decision(rights_world, "vendor_admin"), result_type=DecisionResult)
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.failed
    failed = next(entry for entry in state.trail if entry.outcome == "failed")
    assert "withdrawn" in failed.detail
    async with sessions() as session:
        licenses = await session.scalar(select(func.count()).select_from(License).where(License.order_id == order.id))
        grant = await session.get(Grant, rights_world.grants["C1"])
    assert licenses == 0
    assert grant is not None
    assert grant.quota_used == 0
