"""A renewal reads once: the next run begins with what the renewal read, and a deadline at the term's end commits
with the renewal itself (what keeps a 1 January renewal herd to one local activity per subscription)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.subscriptions import SubscriptionActivities
from tessera.models import Subscription, SubscriptionEvent
from tessera.orders.config import workflows_config
from tessera.settings import Settings
from tessera.subscriptions import service
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.subscription_harness import (
    STARTED,
    add_subscription_product,
    buy_subscription,
    reload,
    skip,
    start,
    terminate_started,
    terms,
    worker_on,
)
from tests.workflows.test_replay import RECORD, save_history
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription_models import TermRef
from workflows.subscription_ops import subscription_workflow_input
from workflows.worker import WORKFLOW_RUNNER


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


def local_activities(history: WorkflowHistory) -> list[str]:
    """The local activities a run recorded, in order (their markers carry the activity type)."""
    names = []
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                names.append(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return names


async def test_a_renewal_at_a_deadline_of_p0d_commits_itself_and_the_next_run_reads_nothing_at_its_start(
    own_time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    env, client = own_time_skipping_env, own_time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world, code="SUB-P0D", term="P1M", notice_period="P0D")
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    async with worker_on(client, settings, sessions, f"reads-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        first_run = (await handle.describe()).run_id
        await skip(env, timedelta(days=95))  # three renewals
        runs = [first_run]
        history = await client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
        while True:
            ended = [e for e in history.events if e.HasField("workflow_execution_continued_as_new_event_attributes")]
            if not ended:
                break
            runs.append(ended[0].workflow_execution_continued_as_new_event_attributes.new_execution_run_id)
            history = await client.get_workflow_handle(handle.id, run_id=runs[-1]).fetch_history()
        assert len(runs) == 4, "three renewals, three runs continued as new"
        first = await client.get_workflow_handle(handle.id, run_id=runs[0]).fetch_history()
        second = await client.get_workflow_handle(handle.id, run_id=runs[1]).fetch_history()

    # The first run reads at its start; every later one begins with what the renewal read. No run commits on
    # its own: the deadline is the term's end, so the renewal commits in the same transaction. (Reminders, 30
    # and 7 days before the deadline, are steps of their own.)
    reads = ("subscriptions.begin", "subscriptions.commit", "subscriptions.end_term")
    assert [name for name in local_activities(first) if name in reads] == ["subscriptions.begin", reads[2]]
    assert [name for name in local_activities(second) if name in reads] == [reads[2]]
    assert "subscriptions.step" in local_activities(second)
    current = await reload(sessions, subscription.id)
    assert current.term_no == 4
    rows = await terms(sessions, subscription.id)
    assert [row.term_no for row in rows] == [1, 2, 3, 4]
    assert all(row.committed_at is not None and row.renewed_at is not None for row in rows[1:])
    async with sessions() as session:
        history_rows = await session.execute(
            select(SubscriptionEvent.action, SubscriptionEvent.term_no)
            .where(SubscriptionEvent.subscription_id == subscription.id)
            .order_by(SubscriptionEvent.term_no, SubscriptionEvent.action)
        )
        actions = [f"{action}:{term_no}" for action, term_no in history_rows.all()]
    renewals = [action for action in actions if action.split(":")[0] in ("committed", "renewed")]
    assert renewals == [f"{what}:{n}" for n in (2, 3, 4) for what in ("committed", "renewed")], "each once"

    replayer = Replayer(
        workflows=[SubscriptionWorkflow], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    for history in (first, second):
        await replayer.replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(first, "subscription_commit_with_renewal")
        save_history(second, "subscription_carried_begin")


@pytest.mark.parametrize("signalled", [False, True], ids=["quiet", "changed-before-first-task"])
async def test_a_run_begins_with_the_carried_read_unless_a_change_was_signalled_before_its_first_task(
    own_time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    signalled: bool,
) -> None:
    env, client = own_time_skipping_env, own_time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=1, env=env)
    templates = settings.config_dir / "templates"
    activities = SubscriptionActivities(
        sessions, TEST_SECRET, templates, settings.portal_url, lambda: workflows_config(settings)
    )
    # What a renewal would hand the next run: the subscription active. Then it is revoked before that run begins.
    carried = await activities.begin(TermRef(subscription_id=str(subscription.id), at=await env.get_current_time()))
    assert carried.snapshot.status == "active"
    async with sessions() as session:
        found = await session.get(Subscription, subscription.id)
        assert found is not None
        request = (await subscription_workflow_input(session, found)).model_copy(update={"begun": carried})
        await service.revoke(session, subscription.id, await env.get_current_time())
        await session.commit()
    async with worker_on(client, settings, sessions, f"carried-{uuid.uuid4()}") as queued:
        handle = await client.start_workflow(
            SubscriptionWorkflow.run,
            request,
            id=f"subscription-{subscription.id}",
            task_queue=queued.task_queue,
            start_signal="changed" if signalled else None,
        )
        STARTED.append(handle)
        if signalled:  # the signal makes the carried read stale: the run reads, sees the revocation and ends
            final = await handle.result()
            assert final.status == "revoked"
        else:  # nothing said otherwise: the run trusts what it was handed and sleeps towards the term's end
            await skip(env, timedelta(days=1))
            state = await handle.query(SubscriptionWorkflow.state)
            assert state.status == "active"
        history = await handle.fetch_history()
    reads = [name for name in local_activities(history) if name == "subscriptions.begin"]
    assert reads == (["subscriptions.begin"] if signalled else [])
