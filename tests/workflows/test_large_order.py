"""A 10,000-license order runs through the whole workflow: exactly 10,000 licenses and tickets, every one allocated."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, Grant, License, Ticket
from tessera.orders.status import OrderStatus
from tessera.settings import Settings
from tests.conftest import RightsWorld
from tests.workflows.order_harness import CREATE, place_order, process, running_worker, start, workflow_input

QUANTITY = 10_000


async def test_a_ten_thousand_license_order_completes(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == rights_world.grants["C3"]).values(quota=None))
        await session.commit()
    order = await place_order(sessions, rights_world, organization="C3", requester="foreign_admin", quantity=QUANTITY)
    steps = process(
        CREATE,
        {"kind": "allocate", "to": "organization"},
        {"kind": "visibility", "visible_to": "admins_only"},
        {"kind": "webhook", "event": "order.fulfilled"},
    )
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        state = await asyncio.wait_for(handle.result(), 300)
    assert state.status == OrderStatus.fulfilled
    assert f"{QUANTITY} license(s)" in next(
        e.detail for e in state.trail if e.kind == "create_license" and e.outcome == "done"
    )
    async with sessions() as session:
        licenses = await session.scalar(select(func.count()).select_from(License).where(License.order_id == order.id))
        tickets = (
            await session.execute(
                select(func.count(), func.count(Ticket.allocated_user_id), func.min(Ticket.visibility))
                .select_from(Ticket)
                .join(License)
                .where(License.order_id == order.id)
            )
        ).one()
        published = (await session.scalars(select(Event).where(Event.order_id == order.id))).one()
    assert licenses == QUANTITY
    assert tuple(tickets) == (QUANTITY, 0, "admins_only")
    assert len(published.payload["license_ids"]) == QUANTITY
