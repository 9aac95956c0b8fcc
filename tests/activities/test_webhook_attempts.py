"""The webhook attempt activity called directly, against a real receiver on loopback, on both databases."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import jsonschema_rs
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.webhooks import WebhookActivities
from tessera.models import Event, EventKind, User
from tessera.settings import REPO_ROOT
from tessera.webhooks.deliveries import prepare_dispatch
from tessera.webhooks.event_types import EVENT_TYPES
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tessera.webhooks.sender import Outcome, SendPolicy, new_client, send
from tessera.webhooks.status import DeliveryStatus, EndpointStatus
from tests.conftest import TEST_SECRET
from tests.webhook_receiver import Answer, Receiver, running_receiver
from tests.webhook_world import WebhookWorld, add_endpoint, add_event, build_world
from workflows.webhook_models import AttemptInput

POLICY = SendPolicy(allow_loopback=True, connect_timeout=2, total_timeout=5)
DAY = 24 * 3600.0


def activities(sessions: async_sessionmaker[AsyncSession], policy: SendPolicy = POLICY) -> WebhookActivities:
    return WebhookActivities(
        sessions, TEST_SECRET, REPO_ROOT / "config" / "templates", "http://portal.test", policy, timedelta(days=3)
    )


def attempt(delivery_id: uuid.UUID, number: int, planned: float = 10.0, remaining: float = 3 * DAY) -> AttemptInput:
    return AttemptInput(
        delivery_id=str(delivery_id),
        attempt=number,
        planned_delay_seconds=planned,
        remaining_seconds=remaining,
        retry_after_max_seconds=3600,
    )


async def one_delivery(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld, url: str, *, raw_url: bool = False
) -> uuid.UUID:
    await add_endpoint(sessions, world, url, raw_url=raw_url)
    event_id = await add_event(sessions, world.customer_id)
    async with sessions() as session:
        starts = await prepare_dispatch(session, event_id)
        await session.commit()
    assert len(starts) == 1
    return starts[0].delivery_id


async def row(sessions: async_sessionmaker[AsyncSession], delivery_id: uuid.UUID) -> WebhookDelivery:
    async with sessions() as session:
        found = await session.get(WebhookDelivery, delivery_id)
        assert found is not None
        return found


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> WebhookWorld:
    return await build_world(sessions)


async def test_a_delivery_is_signed_matches_its_schema_and_is_recorded_delivered_once(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld
) -> None:
    async with running_receiver() as receiver:
        endpoint_id, secret = await add_endpoint(sessions, world, receiver.url)
        receiver.secrets = [secret]
        event_id = await add_event(sessions, world.customer_id)
        async with sessions() as session:
            starts = await prepare_dispatch(session, event_id)
            again = await prepare_dispatch(session, event_id)  # a relay repeating itself finds the same row
            await session.commit()
        assert [s.delivery_id for s in starts] == [s.delivery_id for s in again]
        work = activities(sessions)
        first = await work.attempt(attempt(starts[0].delivery_id, 1))
        repeated = await work.attempt(attempt(starts[0].delivery_id, 1))  # e.g. retried after a worker crash
        await work.close()
    assert first.status == repeated.status == DeliveryStatus.delivered
    assert len(receiver.received) == 1, "a delivered delivery is not sent again"
    got = receiver.received[0]
    assert got.verified_with == [secret]
    assert got.headers["webhook-id"] == str(event_id)
    body = json.loads(got.body)
    jsonschema_rs.validate(EVENT_TYPES["order.fulfilled"].schema(), body)
    assert (body["id"], body["type"]) == (str(event_id), "order.fulfilled")
    delivery = await row(sessions, starts[0].delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None
    assert delivery.workflow_id == f"delivery-{event_id}-{endpoint_id}"


async def test_retry_after_is_honoured_and_410_disables_the_endpoint_and_tells_its_admins(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld
) -> None:
    script = [Answer(503), Answer(429, headers=(("Retry-After", "120"),)), Answer(429, (("Retry-After", "86400"),))]
    async with running_receiver(Receiver(script=[*script, Answer(410)])) as receiver:
        delivery_id = await one_delivery(sessions, world, receiver.url)
        work = activities(sessions)
        results = [await work.attempt(attempt(delivery_id, n)) for n in (1, 2, 3, 4)]
        await work.close()
    assert [r.status for r in results] == ["pending", "pending", "pending", "failed"]
    assert [r.next_delay_seconds for r in results[:3]] == [10.0, 120.0, 3600.0]  # bounded Retry-After
    delivery = await row(sessions, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 4, 410)
    async with sessions() as session:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        assert endpoint.status == EndpointStatus.disabled
        assert "410" in (endpoint.disabled_reason or "")
        notes = (await session.scalars(select(Event).where(Event.kind == EventKind.notification))).all()
    assert len(notes) == 1
    assert notes[0].recipients == [world.admin_email]
    assert notes[0].subject.startswith("Webhook endpoint disabled")


async def test_the_disabled_notice_reaches_each_admin_in_their_language(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld
) -> None:
    async with sessions() as session:
        admin = await session.scalar(select(User).where(User.email == world.admin_email))
        assert admin is not None
        admin.locale = "de"
        await session.commit()
    async with running_receiver(Receiver(script=[Answer(410)])) as receiver:
        delivery_id = await one_delivery(sessions, world, receiver.url)
        work = activities(sessions)
        await work.attempt(attempt(delivery_id, 1))
        await work.close()
    async with sessions() as session:
        notes = (await session.scalars(select(Event).where(Event.kind == EventKind.notification))).all()
    assert [(note.payload["locale"], note.recipients) for note in notes] == [("de", [world.admin_email])]
    assert not notes[0].subject.startswith("Webhook endpoint disabled")


@pytest.mark.parametrize(("status", "final"), [(400, "failed"), (404, "failed"), (408, "pending"), (301, "pending")])
async def test_client_errors_end_the_delivery_other_answers_retry(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld, status: int, final: str
) -> None:
    async with running_receiver(Receiver(default=Answer(status))) as receiver:
        delivery_id = await one_delivery(sessions, world, receiver.url)
        work = activities(sessions)
        result = await work.attempt(attempt(delivery_id, 1))
        await work.close()
    assert (result.status, result.status_code) == (final, status)


async def test_out_of_retry_time_fails_and_disables_an_endpoint_that_never_succeeded(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld
) -> None:
    async with running_receiver(Receiver(default=Answer(500))) as receiver:
        delivery_id = await one_delivery(sessions, world, receiver.url)
        work = activities(sessions)
        first = await work.attempt(attempt(delivery_id, 1, planned=10, remaining=DAY))
        last = await work.attempt(attempt(delivery_id, 2, planned=20, remaining=5))
        await work.close()
    assert (first.status, last.status) == ("pending", "failed")
    assert "out of retry time" in (last.error or "")
    async with sessions() as session:
        endpoint = await session.get(WebhookEndpoint, (await row(sessions, delivery_id)).endpoint_id)
    assert endpoint is not None
    assert endpoint.status == EndpointStatus.disabled


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "http://localhost:9/hook",  # a name resolving to loopback, where loopback is not allowed
    ],
)
async def test_internal_targets_are_refused_at_delivery_time(
    sessions: async_sessionmaker[AsyncSession], world: WebhookWorld, url: str
) -> None:
    delivery_id = await one_delivery(sessions, world, url, raw_url=True)
    work = activities(sessions, SendPolicy(allow_loopback=False, connect_timeout=2, total_timeout=5))
    result = await work.attempt(attempt(delivery_id, 1))
    await work.close()
    assert result.status == "pending"
    assert result.status_code is None
    assert (result.error or "").startswith("refused:"), result.error


async def test_redirects_are_not_followed() -> None:
    async with running_receiver() as target, running_receiver() as receiver:
        receiver.default = Answer(307, headers=(("Location", target.url),))
        async with new_client() as client:
            result = await send(client, receiver.url, b"{}", {}, POLICY)
    assert (result.outcome, result.status_code) == (Outcome.retry, 307)
    assert "redirect" in (result.error or "")
    assert len(receiver.received) == 1
    assert target.received == []


async def test_a_slow_receiver_costs_one_bounded_attempt() -> None:
    async with running_receiver(Receiver(default=Answer(200, delay=60))) as receiver, new_client() as client:
        result = await send(client, receiver.url, b"{}", {}, SendPolicy(allow_loopback=True, total_timeout=0.5))
    assert result.outcome == Outcome.retry
    assert "no complete answer" in (result.error or "")


async def test_a_huge_answer_is_read_only_up_to_the_limit() -> None:
    huge = Answer(200, body_bytes=65_536, stream_chunks=200)  # 12.5 MiB if anyone read it all
    async with running_receiver(Receiver(default=huge)) as receiver, new_client() as client:
        result = await send(client, receiver.url, b"{}", {}, SendPolicy(allow_loopback=True, max_response_bytes=4096))
    assert result.outcome == Outcome.delivered
    assert result.response_bytes <= 4096


async def test_a_connection_refused_is_retried() -> None:
    async with running_receiver() as receiver:
        url = receiver.url
    async with new_client() as client:
        result = await send(client, url, b"{}", {}, POLICY)
    assert result.outcome == Outcome.retry
    assert result.status_code is None


def test_the_client_follows_no_redirects_and_no_proxy_settings() -> None:
    client = new_client()
    assert client.follow_redirects is False
    assert client._trust_env is False
    assert isinstance(client, httpx.AsyncClient)
