"""Years of a subscription on the time-skipping server, with the real activities and a real database."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import Event, EventKind, License, LicenseStatus, SubscriptionStatus, TermKind
from tessera.settings import REPO_ROOT, Settings
from tessera.subscriptions import seats
from tessera.subscriptions.plans import plan_of
from tests.billing_lines import assert_lines_follow_terms
from tests.conftest import RightsWorld
from tests.workflows.order_harness import running_worker
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
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription_models import ProcessState
from workflows.subscription_ops import send_first_activation, signal_subscription, start_revocation_workflow

YEAR = timedelta(days=365)


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


async def _outbox(sessions: async_sessionmaker[AsyncSession], subscription_order: object, name: str) -> list[Event]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.order_id == subscription_order, Event.name == name).order_by(Event.created_at)
        )
        return list(rows.all())


async def test_five_years_renew_with_records_prices_reminders_a_seat_change_and_a_worker_restart(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=2, env=env)
    plan = plan_of(subscription)
    queue = f"subscriptions-{uuid.uuid4()}"
    async with worker_on(client, settings, sessions, queue, stopped_midway=True) as queued:
        handle = await start(client, queued, sessions, subscription)
        await skip(env, YEAR + timedelta(days=30))  # into term 2
        await eventually(lambda: _renewed_through(sessions, subscription.id, 2), "the first renewal")
        # Three seats from the next renewal on: quota is held now, the licenses come with term 3.
        async with sessions() as session:
            found = await session.get(type(subscription), subscription.id)
            assert found is not None
            await seats.change_next_quantity(session, found, 3)
            await session.commit()
        await signal_subscription(client, subscription.id)
    # The worker stops in the middle of term 2 and another one takes over: nothing is lost or done twice.
    async with worker_on(client, settings, sessions, queue):
        await skip(env, 4 * YEAR)
        await eventually(lambda: _renewed_through(sessions, subscription.id, 6), "five renewals")
        state = await handle.query(SubscriptionWorkflow.state)
    assert state.status == "active"
    assert state.term is not None
    assert state.term.number == 6

    rows = await terms(sessions, subscription.id)
    assert [row.term_no for row in rows] == [1, 2, 3, 4, 5, 6, 7][: len(rows)]
    assert rows[0].kind == TermKind.first
    for row in rows[1:6]:
        expected = plan.term(row.term_no)
        assert row.kind == TermKind.renewal
        assert (row.first_day, row.valid_through, row.ends_at) == (
            expected.first_day,
            expected.valid_through,
            expected.ends_at,
        )
        assert row.committed_at is not None
        assert row.renewed_at is not None
        assert row.committed_at <= row.renewed_at
        assert row.unit_price == Decimal("100.00")
    assert [row.quantity for row in rows[:6]] == [2, 2, 3, 3, 3, 3]
    assert rows[2].amount == Decimal("300.00")
    if len(rows) == 7:  # term 6's commitment may already be recorded, never its renewal
        assert rows[6].renewed_at is None

    current = await reload(sessions, subscription.id)
    assert current.status == SubscriptionStatus.active
    assert current.term_no == 6
    async with sessions() as session:
        licenses = (await session.scalars(select(License).where(License.subscription_id == subscription.id))).all()
    assert len(licenses) == 3
    assert {lic.expires_at for lic in licenses} == {plan.term(6).ends_at}
    assert {lic.status for lic in licenses} == {LicenseStatus.active}

    # Reminders 30 and 7 days before each deadline of terms 1-5, each once; a renewal notice per renewal.
    reminders = await _outbox(sessions, subscription.order_id, "subscription_reminder.txt.j2")
    assert len(reminders) == 10
    assert len({reminder.key for reminder in reminders}) == 10
    assert all(reminder.kind == EventKind.notification and reminder.recipients for reminder in reminders)
    renewed = await _outbox(sessions, subscription.order_id, "subscription.renewed")
    assert len(renewed) == 5
    assert await assert_lines_follow_terms(sessions) >= 6  # the first term and five renewals, seats as they were


async def _renewed_through(sessions: async_sessionmaker[AsyncSession], subscription_id: object, term_no: int) -> bool:
    found = await reload(sessions, subscription_id)  # type: ignore[arg-type]
    return found.term_no >= term_no


async def test_a_revocation_between_commitment_and_renewal_ends_it_without_renewing(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    async with running_worker(client, settings, sessions) as queue:
        queued = settings.model_copy(update={"task_queue": queue})
        handle = await start(client, queued, sessions, subscription)
        await skip(env, YEAR - timedelta(days=10))  # past the notice deadline, before the term's end
        rows = await terms(sessions, subscription.id)
        assert len(rows) == 2
        assert rows[1].committed_at is not None
        async with sessions() as session:
            await start_revocation_workflow(
                client,
                queued,
                session,
                target="subscription",
                target_id=subscription.id,
                requester_user_id=rights_world.users["reseller_admin"],
                reason="contract ended",
            )
        revocation = client.get_workflow_handle(f"revocation-{subscription.id}", result_type=ProcessState)
        revoked = await revocation.result()
        assert revoked.status == "done"
        final = await handle.result()
    assert final.status == "revoked"
    current = await reload(sessions, subscription.id)
    assert current.status == SubscriptionStatus.revoked
    assert current.term_no == 1
    assert (await terms(sessions, subscription.id))[1].renewed_at is None
    async with sessions() as session:
        statuses = (
            await session.scalars(select(License.status).where(License.subscription_id == subscription.id))
        ).all()
    assert set(statuses) == {LicenseStatus.revoked}


async def test_a_subscription_starting_at_first_activation_waits_across_a_worker_restart_then_fixes_its_anchor(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world, code="SUB-ACT", anchor="first_activation")
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    assert subscription.status == SubscriptionStatus.pending
    assert subscription.start_date is None
    queue = f"subscriptions-{uuid.uuid4()}"
    async with worker_on(client, settings, sessions, queue, stopped_midway=True) as queued:
        handle = await start(client, queued, sessions, subscription)
        await env.sleep(timedelta(days=40))  # nothing happens while it waits
        assert (await reload(sessions, subscription.id)).status == SubscriptionStatus.pending
    # The worker stops while the subscription waits, and another one takes over: the activation still lands.
    async with worker_on(client, settings, sessions, queue):
        activated_at = await env.get_current_time()
        await send_first_activation(client, subscription.id, activated_at)
        await eventually(
            lambda: _status_is(sessions, subscription.id, SubscriptionStatus.active), "the activation to take hold"
        )
        state = await handle.query(SubscriptionWorkflow.state)
    current = await reload(sessions, subscription.id)
    assert current.start_date == activated_at.date()
    assert state.term is not None
    assert state.term.first_day == activated_at.date()
    async with sessions() as session:
        expiry = await session.scalar(select(License.expires_at).where(License.subscription_id == subscription.id))
    assert expiry == plan_of(current).term(1).ends_at


async def _status_is(sessions: async_sessionmaker[AsyncSession], subscription_id: object, status: str) -> bool:
    return (await reload(sessions, subscription_id)).status == status  # type: ignore[arg-type]


async def test_a_running_term_keeps_its_steps_and_the_next_term_takes_the_edited_file(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    tmp_path: Path,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    edited = settings.model_copy(update={"config_dir": config})
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    async with running_worker(client, edited, sessions) as queue:
        await start(client, edited.model_copy(update={"task_queue": queue}), sessions, subscription)
        await env.sleep(timedelta(days=30))  # term 1 has begun with the file as shipped (two reminders)
        workflows_file = config / "workflows.yaml"
        text = workflows_file.read_text()
        start_at = text.index("    - kind: reminder\n      name: a week before the deadline")
        end_at = text.index("    - kind: renew\n", start_at)
        workflows_file.write_text(text[:start_at] + text[end_at:])  # the week's reminder is dropped
        await skip(env, 2 * YEAR)
        await eventually(lambda: _renewed_through(sessions, subscription.id, 3), "two renewals")
    reminders = await _outbox(sessions, subscription.order_id, "subscription_reminder.txt.j2")
    term_1 = [r for r in reminders if ":term-1:" in r.key]
    term_2 = [r for r in reminders if ":term-2:" in r.key]
    assert len(term_1) == 2  # the running term kept both reminders
    assert [r.key.rsplit(":", 1)[1] for r in term_2] == ["a month before the deadline"]


async def test_a_subscription_taken_over_from_another_system_begins_at_its_current_term(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    now = await env.get_current_time()
    started = now.date().replace(year=now.year - 3) - timedelta(days=20)  # three years and twenty days ago
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, env=env, subscription_start=started)
    rows = await terms(sessions, subscription.id)
    assert [(row.term_no, row.kind) for row in rows] == [
        (1, TermKind.imported),
        (2, TermKind.imported),
        (3, TermKind.imported),
        (4, TermKind.first),
    ]
    assert all(row.renewed_at is None and row.committed_at is None for row in rows)
    assert rows[3].starts_at <= now < rows[3].ends_at
    assert subscription.imported_terms == 3
    async with worker_on(client, settings, sessions, f"subscriptions-{uuid.uuid4()}") as queued:
        await start(client, queued, sessions, subscription)
        await skip(env, YEAR)
        await eventually(lambda: _renewed_through(sessions, subscription.id, 5), "the first renewal in Tessera")
    rows = await terms(sessions, subscription.id)
    assert rows[4].kind == TermKind.renewal
    assert rows[4].renewed_at is not None
    assert rows[4].first_day == plan_of(subscription).term(5).first_day
    assert await assert_lines_follow_terms(sessions) >= 2  # imported terms have none
