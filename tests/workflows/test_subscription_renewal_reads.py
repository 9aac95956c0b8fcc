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

from tessera.models import SubscriptionEvent
from tessera.settings import Settings
from tests.conftest import RightsWorld
from tests.workflows.subscription_harness import (
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
