"""The Temporal server killed with SIGKILL while a webhook and an e-mail wait between attempts, then started again
on the same database file: each is delivered exactly once, and what was written to the outbox meanwhile too.

One server, one kill and one restart serve both deliveries (a server start is most of what this test costs).
The worker and its outbox relay run in this process and live through the outage, as a worker process would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from tessera.db import create_engine, create_session_factory
from tessera.settings import REPO_ROOT, Settings
from tessera.webhooks.models import WebhookDelivery
from tests.conftest import TEST_SECRET
from tests.email.outbox_rows import add_notification, load
from tests.email.smtp_server import smtp_server
from tests.temporal_server import RestartableTemporal
from tests.webhook_receiver import Answer, Receiver, running_receiver
from tests.webhook_world import add_endpoint, add_event, build_world
from workflows.email_dispatch import email_workflow_id
from workflows.outbox_relay import build_relay
from workflows.worker import build_worker

# The first wait between webhook attempts is 5-10 s (half to all of the base): long enough to kill the server
# in it, short enough for the test. Failed e-mail attempts back off 2 s, 4 s, 8 s... (workflows/email_delivery.py).
RETRY_BASE = timedelta(seconds=10)
FAILING_SMTP_ANSWERS = 40
WAIT_SECONDS = 90.0


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def temporal(tmp_path: Path) -> AsyncIterator[RestartableTemporal]:
    server = RestartableTemporal(tmp_path / "temporal")
    await server.start()
    yield server
    server.kill()


async def _timer_running(client: Client, workflow_id: str) -> bool:
    """The delivery sleeps between attempts now: a timer started and not yet fired."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = [event.event_type for event in history.events]
    return kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) > kinds.count(EventType.EVENT_TYPE_TIMER_FIRED)


async def _in_backoff(client: Client, workflow_id: str) -> bool:
    """The e-mail activity failed and waits for its next attempt (scheduled, not started)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    pending = description.raw_description.pending_activities
    return any(
        activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED and activity.attempt >= 2
        for activity in pending
    )


async def _delivery(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> WebhookDelivery | None:
    async with sessions() as session:
        return await session.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))


async def test_a_killed_temporal_server_delays_deliveries_and_duplicates_none(
    temporal: RestartableTemporal,
    sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    world = await build_world(sessions)
    client = await temporal.connect()
    stop = asyncio.Event()
    with smtp_server() as smtp:
        settings = Settings(
            database_url=sqlite_url,
            var_dir=tmp_path / "var",
            config_dir=REPO_ROOT / "config",
            secret_key=TEST_SECRET.decode(),
            temporal_address=temporal.address,
            task_queue=f"restart-{uuid.uuid4().hex[:8]}",
            webhook_allow_http_loopback=True,
            webhook_retry_base=RETRY_BASE,
            outbox_relay_interval_seconds=0.2,
            smtp_url=SecretStr(smtp.url(query="timeout=5")),
            smtp_from="Example Software <licenses@example.com>",
        )
        # Both receivers fail until told otherwise: the HTTP one with 503, the SMTP one with 451.
        smtp.recorder.replies = ["451 4.3.0 try again later"] * FAILING_SMTP_ANSWERS
        async with running_receiver(Receiver(default=Answer(503))) as receiver:
            _endpoint_id, secret = await add_endpoint(sessions, world, receiver.url)
            receiver.secrets = [secret]
            first_event = await add_event(sessions, world.customer_id)
            first_mail = await add_notification(sessions, recipients=["first@acme.example"])
            async with build_worker(client, settings, sessions):
                relay = asyncio.create_task(build_relay(client, sessions, settings).run(stop))
                try:
                    delivery = None
                    deadline = time.monotonic() + WAIT_SECONDS
                    while time.monotonic() < deadline:
                        delivery = delivery or await _delivery(sessions, first_event)
                        if (
                            delivery is not None
                            and receiver.received
                            and await _timer_running(client, delivery.workflow_id)
                            and await _in_backoff(client, email_workflow_id(first_mail))
                        ):
                            break
                        await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("the deliveries never waited between attempts at the same time")
                    temporal.kill()
                    failed_http = len(receiver.received)
                    with smtp.recorder.lock:
                        failed_smtp = FAILING_SMTP_ANSWERS - len(smtp.recorder.replies)
                        smtp.recorder.replies.clear()
                    receiver.default = Answer(204)
                    # Written while Temporal is away: the relay cannot start their deliveries yet, and keeps them.
                    second_event = await add_event(sessions, world.customer_id)
                    second_mail = await add_notification(sessions, recipients=["second@acme.example"])
                    await asyncio.sleep(1.0)  # a few relay rounds fail meanwhile
                    await temporal.start()
                    await _dispatched(sessions, second_event)
                    await _dispatched(sessions, second_mail)
                    second = await _delivery(sessions, second_event)
                    assert second is not None
                    results = {}
                    for name, workflow_id in (
                        ("first webhook", delivery.workflow_id),
                        ("second webhook", second.workflow_id),
                        ("first mail", email_workflow_id(first_mail)),
                        ("second mail", email_workflow_id(second_mail)),
                    ):
                        handle = client.get_workflow_handle(workflow_id)
                        results[name] = await asyncio.wait_for(handle.result(), WAIT_SECONDS)
                finally:
                    stop.set()
                    await asyncio.wait_for(relay, 30)
    assert temporal.starts == 2

    # Webhooks: the failures before the kill, then one success each; never a second success.
    by_event: dict[str, list[int]] = {}
    for item in receiver.received:
        assert item.verified_with == [secret]
        by_event.setdefault(item.headers["webhook-id"], []).append(item.status)
    assert by_event[str(first_event)] == [503] * failed_http + [204]
    assert by_event[str(second_event)] == [204]
    assert results["first webhook"]["status"] == "delivered"
    assert results["first webhook"]["attempts"] == failed_http + 1
    for event_id, attempts in ((first_event, failed_http + 1), (second_event, 1)):
        row = await _delivery(sessions, event_id)
        assert row is not None
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", attempts, 204)
        assert row.delivered_at is not None

    # E-mail: one message per row, the first after its refused attempts.
    assert sorted(received.message["Message-ID"] for received in smtp.recorder.received) == sorted(
        [f"<{first_mail}@example.com>", f"<{second_mail}@example.com>"]
    )
    assert results["first mail"]["outcome"] == results["second mail"]["outcome"] == "sent"
    first_row, second_row = await load(sessions, first_mail), await load(sessions, second_mail)
    assert (first_row.email_outcome, first_row.email_send_attempts) == ("sent", failed_smtp + 1)
    assert (second_row.email_outcome, second_row.email_send_attempts) == ("sent", 1)
    assert failed_smtp >= 1


async def _dispatched(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> None:
    """Wait until the relay handed the outbox row on (its workflows exist then)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if (await load(sessions, event_id)).dispatched_at is not None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the relay never dispatched outbox row {event_id}")
