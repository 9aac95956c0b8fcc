"""The outbox relay with SMTP on: what a subscription's steps write goes out (mail and webhook), old rows do not."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.subscriptions import SubscriptionActivities
from tessera.apikeys import authenticate
from tessera.models import Event, utcnow
from tessera.orders.config import workflows_config
from tessera.settings import Settings
from tessera.webhooks import endpoints
from tessera.webhooks.models import WebhookDelivery
from tests.conftest import TEST_SECRET, RightsWorld
from tests.email.outbox_rows import add_notification, load
from tests.email.smtp_server import smtp_server
from tests.webhook_receiver import running_receiver
from tests.webhook_world import LOOPBACK_RULES
from tests.workflows.subscription_harness import add_subscription_product, buy_subscription
from workflows.email_dispatch import email_workflow_id
from workflows.outbox_relay import build_relay
from workflows.subscription_models import StepInput
from workflows.worker import build_worker


async def _step_rows(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, world: RightsWorld
) -> tuple[uuid.UUID, uuid.UUID]:
    """A renewal's notify and webhook steps, written by the subscription activity as its workflow would."""
    subscription = await buy_subscription(sessions, world, await add_subscription_product(sessions, world))
    activities = SubscriptionActivities(
        sessions,
        TEST_SECRET,
        settings.config_dir / "templates",
        settings.portal_url,
        lambda: workflows_config(settings),
    )
    key = f"subscription-{subscription.id}:term-2"
    common = {"subscription_id": str(subscription.id), "order_id": str(subscription.order_id)}
    environment = ActivityEnvironment()
    await environment.run(
        activities.step,
        StepInput(
            **common, key=f"{key}:tell", kind="notify", template="subscription_renewed.txt.j2", to=["group_admins"]
        ),
    )
    await environment.run(
        activities.step, StepInput(**common, key=f"{key}:webhook", kind="webhook", event="subscription.renewed")
    )
    async with sessions() as session:
        rows = {row.key: row.id for row in (await session.scalars(select(Event))).all()}
    return rows[f"{key}:tell"], rows[f"{key}:webhook"]


async def test_the_relay_mails_and_posts_what_subscription_steps_wrote_and_not_what_predates_email(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    with smtp_server() as smtp:
        configured = settings.model_copy(
            update={
                "task_queue": f"relay-mail-{uuid.uuid4().hex[:12]}",
                "smtp_url": SecretStr(smtp.url()),
                "smtp_from": "Example Software <licenses@example.com>",
                "webhook_allow_http_loopback": True,
            }
        )
        async with running_receiver() as receiver:
            async with sessions() as session:
                admin = await authenticate(session, TEST_SECRET, rights_world.keys["customer_admin"])
                endpoint, secret = await endpoints.create_endpoint(
                    session,
                    admin,
                    TEST_SECRET,
                    LOOPBACK_RULES,
                    organization_id=rights_world.orgs["C1"],
                    url=receiver.url,
                    event_types=("subscription.renewed",),
                )
                await session.commit()
            receiver.secrets = [secret]
            # A message from before Tessera sent e-mail, as the migration leaves it: skipped, never relayed.
            old = await add_notification(sessions, recipients=["old@acme.example"])
            async with sessions() as session:
                await session.execute(
                    update(Event)
                    .where(Event.id == old)
                    .values(email_outcome="skipped", email_dispatched_at=utcnow(), email_last_error="old")
                )
                await session.commit()
            mail, hook = await _step_rows(sessions, configured, rights_world)
            relay = build_relay(dev_env.client, sessions, configured)
            async with build_worker(dev_env.client, configured, sessions):
                assert await relay.run_once() == 3
                assert await relay.run_once() == 0
                sent = await asyncio.wait_for(dev_env.client.get_workflow_handle(email_workflow_id(mail)).result(), 60)
                async with sessions() as session:
                    delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == hook))
                assert delivery is not None
                posted = await asyncio.wait_for(dev_env.client.get_workflow_handle(delivery.workflow_id).result(), 60)
    assert sent["outcome"] == "sent"
    [message] = smtp.recorder.received
    row = await load(sessions, mail)
    assert "customer.admin@example.com" in message.recipients
    assert message.recipients == list(row.recipients)
    assert message.message["Message-ID"] == f"<{mail}@example.com>"
    assert row.email_dispatched_at is not None, "the outbox must show the message as dispatched, not queued"
    assert (row.email_outcome, row.email_send_attempts) == ("sent", 1)
    # The old row: handed on by the relay (so it is not picked again), yet no workflow and no message for it.
    skipped = await load(sessions, old)
    assert skipped.dispatched_at is not None
    assert (skipped.email_outcome, skipped.email_send_attempts) == ("skipped", 0)
    with pytest.raises(RPCError):
        await dev_env.client.get_workflow_handle(email_workflow_id(old)).describe()
    assert posted["status"] == "delivered"
    [request] = receiver.received
    assert request.verified_with == [secret]
    assert request.headers["webhook-id"] == str(hook)
    async with sessions() as session:
        stored = await session.get(WebhookDelivery, delivery.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.endpoint_id) == ("delivered", 1, endpoint.id)
