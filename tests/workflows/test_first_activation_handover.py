"""The first activation of a pending subscription is never lost: the activation's commit records it, the API
signals at once, and what that signal missed the worker's relay (or the workflow's own read at its start) hands
on. However many of these arrive, the subscription is anchored once, at the recorded first activation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.activation.models import Activation, FirstActivation
from tessera.licenses import codes
from tessera.models import License, Subscription, SubscriptionEvent, SubscriptionStatus, SubscriptionTerm, Ticket
from tessera.settings import Settings
from tessera.subscriptions.plans import local_date
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.subscription_harness import (
    add_subscription_product,
    buy_subscription,
    eventually,
    reload,
    start,
    terminate_started,
    worker_on,
)
from tests.workflows.test_replay import RECORD, save_history
from tests.workflows.test_replay_subscriptions import _replayer
from workflows.activation_relay import FirstActivationRelay
from workflows.subscription import ANCHOR_FROM_RECORD, SubscriptionWorkflow
from workflows.subscription_ops import send_first_activation


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


@pytest.fixture
async def unreachable_api(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The API with Temporal out of reach (the `settings` fixture points it at a closed port): every signal fails."""
    assert settings.temporal_address == "127.0.0.1:1"
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as api,
    ):
        yield api


async def test_a_first_activation_whose_signal_failed_still_anchors_the_subscription(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    unreachable_api: AsyncClient,
) -> None:
    client = dev_env.client
    subscription = await _pending_subscription(sessions, rights_world, dev_env, quantity=1)
    async with worker_on(client, settings, sessions, f"handover-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        answer = await _activate(unreachable_api, sessions, subscription.id, 0)
        assert answer.status_code == 201, answer.text
        await asyncio.sleep(0.5)  # the workflow would have anchored by now, had it been told
        assert (await reload(sessions, subscription.id)).status == SubscriptionStatus.pending
        recorded = await _first_activations(sessions, subscription.id)
        assert len(recorded) == 1
        assert recorded[0].signalled_at is None
        assert recorded[0].activated_at == await _activated_at(sessions, answer.json()["activation_id"])

        assert await FirstActivationRelay(client, sessions).run_once() == 1
        await eventually(lambda: _is_active(sessions, subscription.id), "the relayed activation to take hold")
        state = await handle.query(SubscriptionWorkflow.state)
    await _anchored_once_at(sessions, subscription.id, recorded[0])
    assert state.status == SubscriptionStatus.active
    assert (await _first_activations(sessions, subscription.id))[0].signalled_at is not None


async def test_a_workflow_started_after_the_activation_anchors_at_its_first_read(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    unreachable_api: AsyncClient,
    database_url: str,
) -> None:
    client = dev_env.client
    subscription = await _pending_subscription(sessions, rights_world, dev_env, quantity=1)
    answer = await _activate(unreachable_api, sessions, subscription.id, 0)
    assert answer.status_code == 201, answer.text
    # No workflow yet (its start is late): Temporal has none to signal, so the relay is done with the row.
    assert await FirstActivationRelay(client, sessions).run_once() == 1
    assert (await reload(sessions, subscription.id)).status == SubscriptionStatus.pending
    recorded = await _first_activations(sessions, subscription.id)
    async with worker_on(client, settings, sessions, f"handover-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        await eventually(lambda: _is_active(sessions, subscription.id), "the workflow to find the activation")
        history = await _history_once_anchored(handle)
    await _anchored_once_at(sessions, subscription.id, recorded[0])
    # The new path of the command sequence (ANCHOR_FROM_RECORD) has a saved history of its own.
    assert any(ANCHOR_FROM_RECORD.encode() in event.SerializeToString() for event in history.events)
    await _replayer().replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "subscription_anchored_from_record")


async def test_the_signal_and_the_relay_together_anchor_once_at_the_first_activation(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    unreachable_api: AsyncClient,
) -> None:
    client = dev_env.client
    subscription = await _pending_subscription(sessions, rights_world, dev_env, quantity=2)
    first = await _activate(unreachable_api, sessions, subscription.id, 0)
    assert first.status_code == 201, first.text
    second = await _activate(unreachable_api, sessions, subscription.id, 1)  # the other ticket, later
    assert second.status_code == 201, second.text
    recorded = await _first_activations(sessions, subscription.id)
    assert [row.activation_id for row in recorded] == [uuid.UUID(first.json()["activation_id"])]
    async with worker_on(client, settings, sessions, f"handover-{uuid.uuid4()}") as queued:
        # The workflow is told three times at once: a late signal naming a much later instant (a day apart in
        # every time zone), the relay, and a second relay of another worker.
        await start(client, queued, sessions, subscription)
        later = recorded[0].activated_at + timedelta(days=40)
        relays = [FirstActivationRelay(client, sessions) for _ in range(2)]
        await asyncio.gather(
            send_first_activation(client, subscription.id, later), *(relay.run_once() for relay in relays)
        )
        await eventually(lambda: _is_active(sessions, subscription.id), "the activation to take hold")
        assert sum([await relay.run_once() for relay in relays]) == 0  # nothing is left to hand on
    await _anchored_once_at(sessions, subscription.id, recorded[0])


async def test_concurrent_first_activations_of_one_subscription_record_one_and_anchor_once(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    unreachable_api: AsyncClient,
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a race needs concurrent writers: PostgreSQL")
    client = dev_env.client
    seats = 6
    subscription = await _pending_subscription(sessions, rights_world, dev_env, quantity=seats)
    answers = await asyncio.gather(
        *(_activate(unreachable_api, sessions, subscription.id, index) for index in range(seats))
    )
    assert [answer.status_code for answer in answers] == [201] * seats, [answer.text for answer in answers]
    recorded = await _first_activations(sessions, subscription.id)
    assert len(recorded) == 1
    activations = {uuid.UUID(answer.json()["activation_id"]) for answer in answers}
    assert recorded[0].activation_id in activations
    assert recorded[0].activated_at == await _activated_at(sessions, str(recorded[0].activation_id))
    async with worker_on(client, settings, sessions, f"handover-{uuid.uuid4()}") as queued:
        await start(client, queued, sessions, subscription)
        relays = [FirstActivationRelay(client, sessions) for _ in range(4)]
        await asyncio.gather(*(relay.run_once() for relay in relays))
        await eventually(lambda: _is_active(sessions, subscription.id), "the activation to take hold")
    await _anchored_once_at(sessions, subscription.id, recorded[0])


# --- helpers -----------------------------------------------------------------------------------------------


async def _history_once_anchored(handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
    """The run's history once the task that anchored it completed (its status attribute set to active)."""
    for _ in range(200):
        history = await handle.fetch_history()
        upserts = [
            event for event in history.events if event.HasField("upsert_workflow_search_attributes_event_attributes")
        ]
        if len(upserts) >= 2:  # pending when it began waiting, active once anchored
            return history
        await asyncio.sleep(0.05)
    raise AssertionError("the anchoring task never completed")


async def _pending_subscription(
    sessions: async_sessionmaker[AsyncSession], world: RightsWorld, env: WorkflowEnvironment, *, quantity: int
) -> Subscription:
    product = await add_subscription_product(sessions, world, code="SUB-FIRST", anchor="first_activation")
    subscription = await buy_subscription(sessions, world, product, quantity=quantity, env=env)
    assert subscription.status == SubscriptionStatus.pending
    return subscription


async def _activate(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, index: int
) -> Response:
    """Activate the subscription's `index`-th ticket (by license line) into a device of its own."""
    async with sessions() as session:
        tickets = (
            await session.scalars(
                select(Ticket)
                .join(License, License.id == Ticket.license_id)
                .where(License.subscription_id == subscription_id)
                .order_by(License.line_no)
            )
        ).all()
    ticket = tickets[index]
    code = codes.decrypt_code(TEST_SECRET, ticket.id, ticket.code_encrypted)
    body = {"code": code, "container": {"kind": "software", "fingerprint": f"device-{index:04d}"}}
    return await api.post("/api/v1/activations", json=body)


async def _first_activations(
    sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID
) -> list[FirstActivation]:
    async with sessions() as session:
        rows = await session.scalars(select(FirstActivation).where(FirstActivation.subscription_id == subscription_id))
        return list(rows.all())


async def _activated_at(sessions: async_sessionmaker[AsyncSession], activation_id: str) -> object:
    async with sessions() as session:
        return await session.scalar(select(Activation.activated_at).where(Activation.id == uuid.UUID(activation_id)))


async def _is_active(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID) -> bool:
    return (await reload(sessions, subscription_id)).status == SubscriptionStatus.active


async def _anchored_once_at(
    sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, first: FirstActivation
) -> None:
    """Active, anchored on the first activation's day, with one first term and one `activated` entry naming it."""
    current = await reload(sessions, subscription_id)
    assert current.status == SubscriptionStatus.active
    assert current.start_date == local_date(first.activated_at, current.timezone)
    async with sessions() as session:
        first_terms = await session.scalar(
            select(func.count())
            .select_from(SubscriptionTerm)
            .where(SubscriptionTerm.subscription_id == subscription_id, SubscriptionTerm.kind == "first")
        )
        entries = (
            await session.scalars(
                select(SubscriptionEvent).where(
                    SubscriptionEvent.subscription_id == subscription_id, SubscriptionEvent.action == "activated"
                )
            )
        ).all()
        recorded = await session.scalar(
            select(func.count()).select_from(FirstActivation).where(FirstActivation.subscription_id == subscription_id)
        )
    assert first_terms == 1
    assert recorded == 1
    assert [entry.detail["activated_at"] for entry in entries] == [first.activated_at.isoformat()]
