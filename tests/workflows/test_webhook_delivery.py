"""WebhookDeliveryWorkflow with the real activity and a real receiver; the outbox relay racing itself."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, EventKind
from tessera.settings import Settings
from tessera.webhooks import endpoints
from tessera.webhooks.deliveries import prepare_dispatch
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tessera.webhooks.status import EndpointStatus
from tests.conftest import TEST_SECRET
from tests.webhook_receiver import Answer, Receiver, running_receiver
from tests.webhook_world import WebhookWorld, add_endpoint, add_event, build_world
from workflows.outbox_relay import OutboxRelay, build_relay, retry_schedule, start_delivery, webhook_dispatcher
from workflows.webhook_models import DeliveryResult
from workflows.worker import build_worker


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"task_queue": f"webhooks-{uuid.uuid4().hex[:12]}", "webhook_allow_http_loopback": True}
    )


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> WebhookWorld:
    return await build_world(sessions)


async def deliver(
    env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID
) -> list[tuple[str, DeliveryResult]]:
    """Relay the event, run a worker until every delivery workflow finished; their ids and results."""
    relay = build_relay(env.client, sessions, settings)
    assert await relay.run_once() >= 1
    async with sessions() as session:
        starts = await prepare_dispatch(session, event_id)  # the relay's rows, found again
    results = []
    async with build_worker(env.client, settings, sessions):
        for start in starts:
            # Starting again finds the relay's run; this handle lets the test server skip through the waits.
            handle = await start_delivery(env.client, settings.task_queue, start, retry_schedule(settings))
            assert handle is not None
            result = await asyncio.wait_for(handle.result(), 120)
            results.append((start.workflow_id, DeliveryResult.model_validate(result)))
    return results


async def timer_waits(client: Client, workflow_id: str) -> list[float]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_a_failing_receiver_is_retried_with_growing_waits_until_it_answers(
    time_skipping_env: WorkflowEnvironment,
    webhook_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: WebhookWorld,
) -> None:
    receiver = Receiver(script=[Answer(503), Answer(500), Answer(502), Answer(503)], default=Answer(204))
    async with running_receiver(receiver):
        endpoint_id, old = await add_endpoint(sessions, world, receiver.url)
        async with sessions() as session:  # rotated before the event: both secrets sign during the overlap
            _endpoint, new = await endpoints.rotate_secret(
                session, world.admin, TEST_SECRET, endpoint_id, overlap=timedelta(hours=24)
            )
            await session.commit()
        receiver.secrets = [old, new]
        event_id = await add_event(sessions, world.customer_id)
        [(workflow_id, result)] = await deliver(time_skipping_env, webhook_settings, sessions, event_id)
    assert (result.status, result.attempts, result.status_code) == ("delivered", 5, 204)
    assert workflow_id == f"delivery-{event_id}-{endpoint_id}"
    waits = await timer_waits(time_skipping_env.client, workflow_id)
    assert len(waits) == 4, waits
    assert waits == sorted(waits), waits
    assert waits[-1] > waits[0], waits
    assert all(5 <= wait <= 80 for wait in waits), waits  # 10 s doubling, each between half and all of it
    assert len(receiver.received) == 5
    assert {item.headers["webhook-id"] for item in receiver.received} == {str(event_id)}
    assert all(item.verified_with == [old, new] for item in receiver.received)
    async with sessions() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.workflow_id == workflow_id))
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("delivered", 5)


async def test_an_endpoint_failing_for_the_whole_retry_period_is_disabled_and_its_admins_told(
    time_skipping_env: WorkflowEnvironment,
    webhook_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: WebhookWorld,
) -> None:
    settings = webhook_settings.model_copy(update={"webhook_retry_for": timedelta(days=3)})
    async with running_receiver(Receiver(default=Answer(500))) as receiver:
        endpoint_id, secret = await add_endpoint(sessions, world, receiver.url)
        async with sessions() as session:  # rotated with no overlap: the old secret signs nothing any more
            _endpoint, new = await endpoints.rotate_secret(
                session, world.admin, TEST_SECRET, endpoint_id, overlap=timedelta(0)
            )
            await session.commit()
        receiver.secrets = [secret, new]
        event_id = await add_event(sessions, world.customer_id)
        [(workflow_id, result)] = await deliver(time_skipping_env, settings, sessions, event_id)
    assert result.status == "failed"
    waits = await timer_waits(time_skipping_env.client, workflow_id)
    assert sum(waits) <= 3 * 24 * 3600
    assert max(waits) <= 6 * 3600
    assert result.attempts == len(waits) + 1 == len(receiver.received)
    assert all(item.verified_with == [new] for item in receiver.received)
    async with sessions() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        notes = (await session.scalars(select(Event).where(Event.kind == EventKind.notification))).all()
    assert endpoint is not None
    assert endpoint.status == EndpointStatus.disabled
    assert [note.recipients for note in notes] == [[world.admin_email]]


async def test_two_relays_racing_start_one_delivery_per_event_and_endpoint(
    dev_env: WorkflowEnvironment,
    webhook_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: WebhookWorld,
) -> None:
    # No worker polls this task queue: the workflows only have to exist, once each.
    await add_endpoint(sessions, world, "https://hooks.example.com/a")
    await add_endpoint(sessions, world, "https://hooks.example.com/b", organization_id=world.vendor_id)
    await add_endpoint(sessions, world, "https://hooks.example.com/c", event_types=("order.failed",))
    events = [await add_event(sessions, world.customer_id) for _ in range(5)]
    dispatch = webhook_dispatcher(sessions, webhook_settings)
    relays = [
        OutboxRelay(dev_env.client, sessions, dispatchers={EventKind.webhook: dispatch}, batch=3) for _ in range(4)
    ]
    for _ in range(3):  # several rounds, so relays overlap at different points of the batch
        await asyncio.gather(*(relay.run_once() for relay in relays))
    async with sessions() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
        undispatched = await session.scalar(
            select(func.count()).select_from(Event).where(Event.dispatched_at.is_(None))
        )
    assert undispatched == 0
    assert len(rows) == len(events) * 2, "one delivery per event and subscribed endpoint"
    assert len({(r.event_id, r.endpoint_id) for r in rows}) == len(rows)
    query = f"WorkflowType = 'WebhookDeliveryWorkflow' AND TaskQueue = '{webhook_settings.task_queue}'"
    count = 0
    for _ in range(100):  # visibility catches up shortly after the starts
        count = (await dev_env.client.count_workflows(query)).count
        if count >= len(rows):
            break
        await asyncio.sleep(0.1)
    assert count == len(rows)
    for delivery in rows:
        await dev_env.client.get_workflow_handle(delivery.workflow_id).terminate("test over")
