"""A failed order never looks fulfilled: only its failure is published, its licenses are revoked, quota comes back."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.orders import OrderActivities
from tessera.apikeys import authenticate
from tessera.models import Event, Grant, License, Order, Ticket
from tessera.orders.status import OrderStatus
from tessera.settings import Settings
from tessera.webhooks import endpoints
from tessera.webhooks.deliveries import prepare_dispatch
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import CREATE, place_order, process, running_worker, start, workflow_input
from workflows.order_models import FailInput, OrderRef, OrderState

NOTIFY = {"kind": "notify", "name": "tell", "template": "order_fulfilled.txt.j2", "to": ["requester"]}
WEBHOOK = {"kind": "webhook", "event": "order.fulfilled"}
# Valid in the file (checked against the declared roots), but this order has no such field: it fails at run time.
UNEVALUABLE = {"kind": "wait", "name": "cool off", "duration": "P1D", "when": "order.fields.cooling_days > 3"}


async def _events(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> list[Event]:
    async with sessions() as session:
        return list((await session.scalars(select(Event).where(Event.order_id == order_id))).all())


async def _statuses(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> tuple[set[str], set[str]]:
    async with sessions() as session:
        licenses = set((await session.scalars(select(License.status).where(License.order_id == order_id))).all())
        tickets = set(
            (await session.scalars(select(Ticket.status).join(License).where(License.order_id == order_id))).all()
        )
    return licenses, tickets


async def _endpoint(
    sessions: async_sessionmaker[AsyncSession], world: RightsWorld, event_types: tuple[str, ...]
) -> uuid.UUID:
    async with sessions() as session:
        admin = await authenticate(session, TEST_SECRET, world.keys["customer_admin"])
        endpoint, _secret = await endpoints.create_endpoint(
            session,
            admin,
            TEST_SECRET,
            endpoints.UrlRules(),
            organization_id=world.orgs["C1"],
            url="https://hooks.example.com/orders",
            event_types=event_types,
        )
        await session.commit()
        return endpoint.id


async def _quota_used(sessions: async_sessionmaker[AsyncSession], grant_id: uuid.UUID) -> int:
    async with sessions() as session:
        grant = await session.get(Grant, grant_id)
        assert grant is not None
        return grant.quota_used


async def test_a_step_failing_after_notify_and_webhook_publishes_only_the_failure(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, quantity=3)
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 3
    fulfilled_only = await _endpoint(sessions, rights_world, ("order.fulfilled",))
    both = await _endpoint(sessions, rights_world, ("order.fulfilled", "order.failed"))
    steps = process(CREATE, {"kind": "allocate", "to": "as_ordered"}, NOTIFY, WEBHOOK, UNEVALUABLE)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.failed
    failed = next(entry for entry in state.trail if entry.outcome == "failed")
    assert "cooling_days" in failed.detail
    # The queued notification and event are marked as never sent, after the failure that stopped them.
    assert [(e.step, e.outcome) for e in state.trail[-2:]] == [("tell", "withdrawn"), ("webhook", "withdrawn")]
    async with sessions() as session:
        stored = await session.get(Order, order.id)
        assert stored is not None
    assert stored.status == "failed"
    assert [entry["outcome"] for entry in stored.trail][-3:] == ["failed", "withdrawn", "withdrawn"]
    events = await _events(sessions, order.id)
    assert [(e.kind, e.name) for e in events] == [("webhook", "order.failed")]
    assert events[0].payload["status"] == "failed"
    assert len(events[0].payload["revoked_license_ids"]) == 3
    assert await _statuses(sessions, order.id) == ({"revoked"}, {"revoked"})
    # Nothing was delivered, so all of the reserved quota is back.
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 0
    # What the outbox relay makes of it: one delivery, of order.failed, to the endpoint that wants failures;
    # the endpoint that wants only order.fulfilled hears nothing.
    async with sessions() as session:
        starts = [start for event in events for start in await prepare_dispatch(session, event.id)]
        await session.commit()
    assert [(start.event_id, start.endpoint_id) for start in starts] == [(events[0].id, both)]
    assert fulfilled_only != both


async def test_a_template_that_no_longer_renders_fails_the_step_with_its_reason(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    order = await place_order(sessions, rights_world, quantity=2)
    steps = process(CREATE, {**NOTIFY, "template": "broken.txt.j2"}, WEBHOOK)
    steps.templates["broken.txt.j2"] = "Subject: {{ order.no_such_thing.at_all }}\n"
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        # Retried forever, this would time out: a template error is not retryable.
        state = await asyncio.wait_for(handle.result(), 60)
    assert state.status == OrderStatus.failed
    reason = next(entry for entry in state.trail if entry.outcome == "failed").detail
    assert "'tell'" in reason
    assert "broken.txt.j2" in reason
    assert "no_such_thing" in reason
    assert [(e.step, e.outcome) for e in state.trail[-2:]] == [("tell", "withdrawn"), ("webhook", "withdrawn")]
    assert [(e.kind, e.name) for e in await _events(sessions, order.id)] == [("webhook", "order.failed")]
    assert await _statuses(sessions, order.id) == ({"revoked"}, {"revoked"})


async def test_failing_an_order_twice_changes_nothing_more(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    order = await place_order(sessions, rights_world, quantity=2)
    activities = OrderActivities(sessions, TEST_SECRET, settings.config_dir / "templates", settings.portal_url)
    environment = ActivityEnvironment()
    await environment.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    failure = FailInput(order_id=str(order.id), reason="boom", state=OrderState(status=OrderStatus.failed))
    await environment.run(activities.fail, failure)
    await environment.run(activities.fail, failure)
    assert len(await _events(sessions, order.id)) == 1
    assert await _statuses(sessions, order.id) == ({"revoked"}, {"revoked"})
    assert await _quota_used(sessions, rights_world.grants["C1"]) == 0
