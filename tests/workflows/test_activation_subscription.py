"""The first activation of a pending subscription's license, through the API, starts its terms: the activation
service signals the subscription's workflow after its commit, and a repeated activation changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.licenses import codes
from tessera.models import License, SubscriptionStatus, Ticket
from tessera.settings import Settings
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


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


async def test_first_activation_through_the_api_starts_a_pending_subscription(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world, code="SUB-ACT", anchor="first_activation")
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    assert subscription.status == SubscriptionStatus.pending
    async with sessions() as session:
        ticket = await session.scalar(
            select(Ticket)
            .join(License, License.id == Ticket.license_id)
            .where(License.subscription_id == subscription.id)
        )
    queue = f"subscriptions-{uuid.uuid4()}"
    async with worker_on(client, settings, sessions, queue) as queued:
        await start(client, queued, sessions, subscription)
        api_settings = queued.model_copy(update={"temporal_address": client.service_client.config.target_host})
        app = create_app(api_settings)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as api,
        ):
            assert ticket is not None
            code = codes.decrypt_code(TEST_SECRET, ticket.id, ticket.code_encrypted)
            body = {"code": code, "container": {"kind": "software", "fingerprint": "device-0001"}}
            first = await api.post("/api/v1/activations", json=body)
            assert first.status_code == 201, first.text
            await eventually(
                lambda: _status_is(sessions, subscription.id, SubscriptionStatus.active), "the activation to land"
            )
            again = await api.post("/api/v1/activations", json=body)
            assert again.status_code == 200
    current = await reload(sessions, subscription.id)
    assert current.status == SubscriptionStatus.active
    assert current.start_date is not None


async def _status_is(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, status: str) -> bool:
    return (await reload(sessions, subscription_id)).status == status
