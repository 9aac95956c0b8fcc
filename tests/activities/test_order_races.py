"""Concurrent attempts at the same order's activities (a retry racing a slow first attempt): nothing twice."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from tessera.models import Event, Grant, License, Ticket
from tessera.orders.status import OrderStatus
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import place_order
from workflows.order_models import FailInput, OrderRef, OrderState


def _activities(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> OrderActivities:
    return OrderActivities(sessions, TEST_SECRET, settings.config_dir / "templates", settings.portal_url)


async def test_two_attempts_at_once_create_each_line_exactly_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == rights_world.grants["C3"]).values(quota=None))
        await session.commit()
    order = await place_order(sessions, rights_world, organization="C3", requester="foreign_admin", quantity=1_200)
    activities, ref = _activities(settings, sessions), OrderRef(order_id=str(order.id))
    outcomes = await asyncio.gather(
        *(ActivityEnvironment().run(activities.create_licenses, ref) for _ in range(3)), return_exceptions=True
    )
    if any(isinstance(outcome, BaseException) for outcome in outcomes):
        # A loser's transaction failed on the unique line number; Temporal retries it, and so do we.
        await ActivityEnvironment().run(activities.create_licenses, ref)
    async with sessions() as session:
        lines = (await session.scalars(select(License.line_no).where(License.order_id == order.id))).all()
        tickets = await session.scalar(
            select(func.count(func.distinct(Ticket.license_id))).join(License).where(License.order_id == order.id)
        )
        all_tickets = await session.scalar(
            select(func.count()).select_from(Ticket).join(License).where(License.order_id == order.id)
        )
    assert sorted(lines) == list(range(1, 1_201))
    assert tickets == all_tickets == 1_200


async def test_two_failures_at_once_publish_once_and_give_the_quota_back_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    order = await place_order(sessions, rights_world, quantity=4)
    activities = _activities(settings, sessions)
    await ActivityEnvironment().run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    failure = FailInput(order_id=str(order.id), reason="boom", state=OrderState(status=OrderStatus.failed))
    outcomes = await asyncio.gather(
        *(ActivityEnvironment().run(activities.fail, failure) for _ in range(4)), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):  # a lost race is retried, as Temporal would
            await ActivityEnvironment().run(activities.fail, failure)
    async with sessions() as session:
        events = (await session.scalars(select(Event.name).where(Event.order_id == order.id))).all()
        grant = await session.get(Grant, rights_world.grants["C1"])
        statuses = set((await session.scalars(select(License.status).where(License.order_id == order.id))).all())
    assert events == ["order.failed"]
    assert grant is not None
    assert grant.quota_used == 0  # given back once: never below what other orders hold
    assert statuses == {"revoked"}
