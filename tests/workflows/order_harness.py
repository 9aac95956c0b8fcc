"""Run LicenseOrderWorkflow with its real activities against a real database, on any Temporal test server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tessera.models import Order
from tessera.orders.facts import order_context
from tessera.processes import ResolvedProcess
from tessera.processes.schema import ProcessName
from tessera.settings import Settings
from tests.conftest import RightsWorld
from workflows.license_order import LicenseOrderWorkflow
from workflows.order_models import OrderState, OrderWorkflowInput
from workflows.worker import build_worker


def process(*steps: dict[str, Any]) -> ResolvedProcess:
    return ResolvedProcess.model_validate(
        {"process": ProcessName.license_order, "steps": list(steps), "version": "test-version"}
    )


APPROVAL = {"kind": "approval", "name": "check", "approvers": "group_admins", "timeout": "P3D"}
CREATE = {"kind": "create_license"}


async def place_order(
    sessions: async_sessionmaker[AsyncSession],
    world: RightsWorld,
    *,
    organization: str = "C1",
    requester: str = "customer_admin",
    quantity: int = 3,
    reserve: bool = True,
) -> Order:
    """An accepted order as the API stores it, with its quota reserved on the organization's grant."""
    async with sessions() as session:
        order = Order(
            organization_id=world.orgs[organization],
            product_id=world.product_id,
            quantity=quantity,
            allocation="requester",
            visibility="all_members",
            status="accepted",
            requested_by_user_id=world.users[requester],
            grant_id=world.grants[organization] if reserve else None,
        )
        session.add(order)
        if reserve:
            from tessera.models import Grant

            grant = await session.get(Grant, world.grants[organization])
            assert grant is not None
            grant.quota_used += quantity
        await session.commit()
        return order


async def workflow_input(
    sessions: async_sessionmaker[AsyncSession], order: Order, steps: ResolvedProcess
) -> OrderWorkflowInput:
    async with sessions() as session:
        facts = await order_context(session, order)
    return OrderWorkflowInput(
        order_id=str(order.id),
        summary=f"{order.quantity} x PRO-CAD",
        process=steps,
        facts=facts,
        organization_id=str(order.organization_id),
        product_code="PRO-CAD",
    )


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[str]:
    queue = f"orders-{uuid.uuid4()}"
    worker: Worker = build_worker(client, settings.model_copy(update={"task_queue": queue}), sessions)
    async with worker:
        yield queue


async def start(
    client: Client, queue: str, order_input: OrderWorkflowInput
) -> WorkflowHandle[LicenseOrderWorkflow, OrderState]:
    return await client.start_workflow(
        LicenseOrderWorkflow.run, order_input, id=f"order-{order_input.order_id}", task_queue=queue
    )


async def until_waiting(handle: WorkflowHandle[LicenseOrderWorkflow, OrderState], *, rounds: int = 1) -> OrderState:
    """Poll the query until the approval waits (for the `rounds`-th time); bounded to a few seconds."""
    for _ in range(200):
        state = await handle.query(LicenseOrderWorkflow.state)
        started = sum(
            1 for entry in state.trail if entry.kind == "approval" and entry.outcome in ("started", "escalated")
        )
        if state.waiting_for_approval and started >= rounds:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError("the approval never started waiting")
