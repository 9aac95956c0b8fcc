"""Cancelling, uncancelling and revoking running subscriptions, on the time-skipping server with real workflows.

The receipt instant decides: a cancellation received one second before the notice deadline ends the current term;
one received exactly at the deadline ends the next one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tessera.apikeys import authenticate
from tessera.models import License, LicenseStatus, Subscription, SubscriptionStatus
from tessera.settings import Settings
from tessera.subscriptions import requests
from tessera.subscriptions.plans import plan_of
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.subscription_harness import (
    add_subscription_product,
    buy_subscription,
    eventually,
    reload,
    skip,
    start,
    terminate_started,
    terms,
    worker_on,
)
from workflows import search_attributes as sa
from workflows.subscription_models import ProcessState
from workflows.subscription_ops import (
    signal_subscription,
    start_cancellation_workflow,
    start_revocation_workflow,
)

YEAR = timedelta(days=365)


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


async def _cancel(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: RightsWorld,
    subscription_id: uuid.UUID,
    received_at: datetime,
) -> datetime:
    """Cancel as the API does (received at `received_at`), run its workflow to the end; returns the effective end."""
    async with sessions() as session:
        principal = await authenticate(session, TEST_SECRET, world.keys["vendor_admin"])
        cancellation = await requests.cancel(session, principal, subscription_id, received_at=received_at)
        await session.commit()
        effective_end, cancellation_id, workflow_id = (
            cancellation.effective_end_at,
            cancellation.id,
            cancellation.workflow_id,
        )
        await start_cancellation_workflow(client, settings, session, cancellation_id)
    assert (await client.get_workflow_handle(workflow_id, result_type=ProcessState).result()).status == "done"
    return effective_end


async def _licenses(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID) -> set[str]:
    async with sessions() as session:
        rows = await session.scalars(select(License.status).where(License.subscription_id == subscription_id))
        return set(rows.all())


async def _at(env: WorkflowEnvironment, instant: datetime) -> None:
    await skip(env, instant - await env.get_current_time())


async def test_one_second_before_the_deadline_ends_this_term_and_at_the_deadline_the_next(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    early = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    on_time = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    plan = plan_of(early)
    deadline = plan.term(1).cancel_deadline_at
    assert plan_of(on_time).term(1).cancel_deadline_at == deadline
    async with worker_on(client, settings, sessions, f"subscriptions-{uuid.uuid4()}") as queued:
        await start(client, queued, sessions, early)
        await start(client, queued, sessions, on_time)
        await _at(env, deadline - timedelta(seconds=2))
        ends_early = await _cancel(client, queued, sessions, rights_world, early.id, deadline - timedelta(seconds=1))
        ends_late = await _cancel(client, queued, sessions, rights_world, on_time.id, deadline)
        assert ends_early == plan.term(1).ends_at
        assert ends_late == plan.term(2).ends_at
        await eventually(lambda: _listed_as(client, early.id, "non_renewing"), "operators to see it non-renewing")
        await _at(env, plan.term(1).ends_at + timedelta(days=1))
        await eventually(lambda: _status(sessions, early.id, SubscriptionStatus.expired), "the early one to expire")
        await eventually(lambda: _term(sessions, on_time.id, 2), "the late one to renew once")
        assert (await reload(sessions, on_time.id)).status == SubscriptionStatus.non_renewing
        await _at(env, plan.term(2).ends_at + timedelta(days=1))
        await eventually(lambda: _status(sessions, on_time.id, SubscriptionStatus.expired), "the late one to expire")
    assert [row.term_no for row in await terms(sessions, early.id)] == [1]
    late_terms = await terms(sessions, on_time.id)
    assert [row.term_no for row in late_terms] == [1, 2]
    assert late_terms[1].renewed_at is not None
    assert await _licenses(sessions, early.id) == {LicenseStatus.expired}
    assert await _licenses(sessions, on_time.id) == {LicenseStatus.expired}


async def _listed_as(client: Client, subscription_id: uuid.UUID, status: str) -> bool:
    described = await client.get_workflow_handle(f"subscription-{subscription_id}").describe()
    return described.typed_search_attributes.get(sa.STATUS) == status


async def _status(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, status: str) -> bool:
    return (await reload(sessions, subscription_id)).status == status


async def _term(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, term_no: int) -> bool:
    return (await reload(sessions, subscription_id)).term_no >= term_no


async def test_an_uncancel_after_the_deadline_commits_and_the_subscription_renews(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    plan = plan_of(subscription)
    async with worker_on(client, settings, sessions, f"subscriptions-{uuid.uuid4()}") as queued:
        await start(client, queued, sessions, subscription)
        await _at(env, plan.term(1).cancel_deadline_at - timedelta(days=3))
        await _cancel(client, queued, sessions, rights_world, subscription.id, await env.get_current_time())
        await _at(env, plan.term(1).cancel_deadline_at + timedelta(days=3))
        assert len(await terms(sessions, subscription.id)) == 1  # no commitment while cancelled
        async with sessions() as session:
            principal = await authenticate(session, TEST_SECRET, rights_world.keys["vendor_admin"])
            withdrawn_at = await env.get_current_time()
            await requests.uncancel(session, principal, subscription.id, withdrawn_at)
            await session.commit()
        await signal_subscription(client, subscription.id)
        rows = await terms(sessions, subscription.id)
        assert rows[1].committed_at == withdrawn_at
        await _at(env, plan.term(1).ends_at + timedelta(days=1))
        await eventually(lambda: _term(sessions, subscription.id, 2), "the renewal")
    current = await reload(sessions, subscription.id)
    assert current.status == SubscriptionStatus.active
    assert current.effective_end_at is None


@pytest.mark.parametrize("state", ["pending", "active", "non_renewing"])
async def test_a_revocation_ends_it_at_once_in_every_live_state(
    state: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    terms_kind = {"anchor": "first_activation"} if state == "pending" else {}
    product = await add_subscription_product(sessions, rights_world, code=f"SUB-{state.upper()}", **terms_kind)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=2, env=env)
    async with worker_on(client, settings, sessions, f"subscriptions-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        await skip(env, timedelta(days=20))
        if state == "non_renewing":
            await _cancel(client, queued, sessions, rights_world, subscription.id, await env.get_current_time())
        assert (await reload(sessions, subscription.id)).status == state
        async with sessions() as session:
            await start_revocation_workflow(
                client,
                queued,
                session,
                target="subscription",
                target_id=subscription.id,
                requester_user_id=rights_world.users["vendor_admin"],
                reason="fraud",
            )
        revocation = client.get_workflow_handle(f"revocation-{subscription.id}", result_type=ProcessState)
        assert (await revocation.result()).status == "done"
        assert (await handle.result()).status == "revoked"
    found = await reload(sessions, subscription.id)
    assert found.status == SubscriptionStatus.revoked
    assert found.revoked_at is not None
    assert await _licenses(sessions, subscription.id) == {LicenseStatus.revoked}
    async with sessions() as session:
        assert (await session.get(Subscription, subscription.id)) is not None
