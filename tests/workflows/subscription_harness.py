"""A subscription bought through an order in the rights world, and its workflow run by a real worker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tessera.licenses import fulfilment
from tessera.models import Grant, Order, Product, Subscription, SubscriptionTerm
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription_models import SubscriptionState
from workflows.subscription_ops import start_subscription_workflow
from workflows.worker import build_worker

SUBSCRIPTION_TERMS: dict[str, Any] = {"term": "P1Y", "alignment": "anniversary", "notice_period": "P1M"}


async def add_subscription_product(
    sessions: async_sessionmaker[AsyncSession], world: RightsWorld, *, code: str = "SUB-CAD", **terms: Any
) -> uuid.UUID:
    async with sessions() as session:
        product = Product(
            code=code,
            group_id=world.group_id,
            name={"en": "ProCAD subscription"},
            kind="subscription",
            container_kinds=["software"],
            price_amount=Decimal("100.00"),
            price_currency="EUR",
            subscription={**SUBSCRIPTION_TERMS, **terms},
        )
        session.add(product)
        await session.commit()
        return product.id


async def buy_subscription(
    sessions: async_sessionmaker[AsyncSession],
    world: RightsWorld,
    product_id: uuid.UUID,
    *,
    quantity: int = 2,
    organization: str = "C1",
    env: WorkflowEnvironment | None = None,
    subscription_start: date | None = None,
) -> Subscription:
    """A fulfilled subscription order as the order workflow leaves it: licenses, tickets and the subscription.

    Bought "now" by the workflow clock of `env`: the shared time-skipping server's clock runs ahead of the wall
    clock once a test has skipped years. A `subscription_start` in the past is a take-over: the terms before the
    one running now are recorded as imported.
    """
    bought_at = await env.get_current_time() if env is not None else None
    async with sessions() as session:
        order = Order(
            organization_id=world.orgs[organization],
            product_id=product_id,
            quantity=quantity,
            allocation="organization",
            visibility="all_members",
            status="fulfilled",
            requested_by_user_id=world.users["customer_admin"],
            grant_id=world.grants[organization],
            subscription_start=subscription_start,
        )
        if bought_at is not None:
            order.created_at = bought_at
        session.add(order)
        grant = await session.get(Grant, world.grants[organization])
        assert grant is not None
        grant.quota_used += quantity
        await session.flush()
        await fulfilment.create_order_license_chunk(session, TEST_SECRET, order.id, 0, now=bought_at)
        await session.commit()
        subscription = await session.scalar(select(Subscription).where(Subscription.order_id == order.id))
        assert subscription is not None
        return subscription


@asynccontextmanager
async def worker_on(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    queue: str,
    *,
    stopped_midway: bool = False,
) -> AsyncIterator[Settings]:
    """A worker on `queue`; stopping it and starting another on the same queue is a worker restart.

    A worker that a test stops midway (`stopped_midway`) keeps no workflows in memory, hence leaves no sticky
    queue behind: on the time-skipping server a task sent to a stopped worker's sticky queue would wait for a
    timeout in skipped time, which does not pass while the task waits. It replays every task from history
    instead, as a worker that took over after a restart does anyway.
    """
    update: dict[str, object] = {"task_queue": queue, "worker_shutdown_grace_seconds": 0}
    if stopped_midway:
        update["worker_max_cached_workflows"] = 0
    queued = settings.model_copy(update=update)
    async with build_worker(client, queued, sessions):
        yield queued


SKIP_STEP_DEADLINE = timedelta(minutes=1)


async def skip(env: WorkflowEnvironment, duration: timedelta, step: timedelta = timedelta(days=30)) -> None:
    """Let `duration` pass on the time-skipping server in steps, so no single call waits for years of work.

    Each step waits for the work it wakes (renewals, reminders, continued runs) with a generous deadline of its own:
    on a loaded machine that work takes longer than the client's default deadline for one call.
    """
    left = duration
    while left > timedelta(0):
        request = SleepRequest()
        request.duration.FromTimedelta(min(step, left))
        await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SKIP_STEP_DEADLINE)
        left -= step


STARTED: list[WorkflowHandle[Any, Any]] = []
"""Workflows a test started; terminated after it, since a workflow left waiting for a worker that is gone would
hold the shared time-skipping server's clock still for every later test."""


async def start(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], subscription: Subscription
) -> WorkflowHandle[SubscriptionWorkflow, SubscriptionState]:
    async with sessions() as session:
        found = await session.get(Subscription, subscription.id)
        assert found is not None
        await start_subscription_workflow(client, settings.task_queue, session, found)
    handle = client.get_workflow_handle_for(SubscriptionWorkflow.run, f"subscription-{subscription.id}")
    STARTED.append(handle)
    return handle


async def terminate_started() -> None:
    while STARTED:
        handle = STARTED.pop()
        with contextlib.suppress(RPCError):
            await handle.terminate("the test is over")


async def terms(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID) -> list[SubscriptionTerm]:
    async with sessions() as session:
        rows = await session.scalars(
            select(SubscriptionTerm)
            .where(SubscriptionTerm.subscription_id == subscription_id)
            .order_by(SubscriptionTerm.term_no)
        )
        return list(rows.all())


async def reload(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID) -> Subscription:
    async with sessions() as session:
        found = await session.get(Subscription, subscription_id)
        assert found is not None
        return found


async def eventually(check: Callable[[], Awaitable[bool]], what: str, *, attempts: int = 200) -> None:
    """Poll `check` for up to ~10 s of real time (the workflow's own steps take real time)."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")
