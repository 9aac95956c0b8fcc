"""Replay: saved histories of the subscription, cancellation and revocation workflows replay against the code.

Recorded like the order histories (see test_replay.py): `TESSERA_RECORD_HISTORIES=1 ./bin/test
tests/workflows/test_replay_subscriptions.py` writes new files next to the saved ones and lists them in
a `.sha256` of their own; saved files are never re-recorded or edited.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tessera.apikeys import authenticate
from tessera.models import Cancellation, CancellationStatus, Subscription
from tessera.processes import ResolvedProcess
from tessera.processes.schema import ProcessName
from tessera.settings import Settings
from tessera.subscriptions import requests
from tessera.subscriptions.facts import subscription_context
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.subscription_harness import (
    add_subscription_product,
    buy_subscription,
    skip,
    start,
    terminate_started,
    worker_on,
)
from tests.workflows.test_replay import HISTORIES, RECORD, save_history
from workflows.cancellation import CancellationWorkflow
from workflows.revocation import RevocationWorkflow
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription_models import CancellationWorkflowInput, ProcessState, StepDecision, StepDecisionResult
from workflows.subscription_ops import start_cancellation_workflow, start_revocation_workflow
from workflows.worker import WORKFLOW_RUNNER

FAMILIES = ("subscription_", "cancellation_", "revocation_")


def _replayer() -> Replayer:
    return Replayer(
        workflows=[SubscriptionWorkflow, CancellationWorkflow, RevocationWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


def saved() -> list[Path]:
    return sorted(path for family in FAMILIES for path in HISTORIES.glob(f"{family}*.json"))


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


@pytest.mark.parametrize("path", saved(), ids=lambda path: path.stem)
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(await asyncio.to_thread(path.read_text)))
    await _replayer().replay_workflow(history)


def test_every_workflow_of_subscriptions_has_a_saved_history() -> None:
    names = {path.name.split("_", 1)[0] for path in saved()}
    assert names == {"subscription", "cancellation", "revocation"}, "record them with TESSERA_RECORD_HISTORIES=1"


async def test_a_term_with_reminders_commitment_and_renewal_replays(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, env=env)
    async with worker_on(client, settings, sessions, f"replay-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        first_run = (await handle.describe()).run_id
        await skip(env, timedelta(days=370))  # the first term ends: its run continues as new
    history = await client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert any(event.HasField("workflow_execution_continued_as_new_event_attributes") for event in history.events)
    await _replayer().replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "subscription_term_renewed")


async def test_an_approved_cancellation_and_a_license_revocation_replay(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, env=env)
    steps = ResolvedProcess.model_validate(
        {
            "process": ProcessName.cancellation,
            "version": "test-version",
            "steps": [
                {"kind": "approval", "name": "reseller check", "approvers": "reseller_admins", "timeout": "P3D"},
                {"kind": "cancel"},
                {"kind": "notify", "name": "confirm", "template": "subscription_cancelled.txt.j2"},
                {"kind": "webhook", "event": "subscription.cancelled"},
            ],
        }
    )
    async with sessions() as session:
        found = await session.get(Subscription, subscription.id)
        assert found is not None
        assert found.term_ends_at is not None
        cancellation = Cancellation(
            subscription_id=found.id,
            n=1,
            status=CancellationStatus.requested,
            received_at=await env.get_current_time(),
            effective_term_no=1,
            effective_end_at=found.term_ends_at,
            requested_by_user_id=rights_world.users["customer_admin"],
            workflow_id=f"cancellation-{found.id}-1",
        )
        session.add(cancellation)
        found.cancellations = 1
        facts = await subscription_context(session, found, rights_world.users["customer_admin"])
        await session.commit()
    request = CancellationWorkflowInput(
        subscription_id=str(subscription.id),
        cancellation_id=str(cancellation.id),
        order_id=str(subscription.order_id),
        n=1,
        summary="cancellation 1",
        process=steps,
        facts=facts,
        requester_user_id=str(rights_world.users["customer_admin"]),
    )
    async with worker_on(client, settings, sessions, f"replay-{uuid.uuid4()}") as queued:
        cancelling = await client.start_workflow(
            CancellationWorkflow.run, request, id=cancellation.workflow_id, task_queue=queued.task_queue
        )
        for _ in range(200):
            if (await cancelling.query(CancellationWorkflow.state)).waiting_for_approval:
                break
            await asyncio.sleep(0.05)
        decision = StepDecision(user_id=str(rights_world.users["reseller_admin"]), comment="agreed")
        assert (await cancelling.execute_update("approve", decision, result_type=StepDecisionResult)).status
        assert (await cancelling.result()).status == "done"
        async with sessions() as session:
            await start_revocation_workflow(
                client,
                queued,
                session,
                target="license",
                target_id=rights_world.licenses["own"],
                requester_user_id=rights_world.users["reseller_admin"],
                reason="refund",
            )
        revoking = client.get_workflow_handle(f"revocation-{rights_world.licenses['own']}", result_type=ProcessState)
        assert (await revoking.result()).status == "done"
    async with sessions() as session:
        applied = await session.get(Cancellation, cancellation.id)
        assert applied is not None
        assert applied.status == CancellationStatus.applied
    for handle, stem in ((cancelling, "cancellation_approved"), (revoking, "revocation_license")):
        history = await handle.fetch_history()
        await _replayer().replay_workflow(history)
        if RECORD and database_url.startswith("sqlite"):
            save_history(history, stem)


async def test_a_term_cancelled_midway_and_expiring_replays(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, env=env)
    async with worker_on(client, settings, sessions, f"replay-{uuid.uuid4()}") as queued:
        handle = await start(client, queued, sessions, subscription)
        await skip(env, timedelta(days=100))
        async with sessions() as session:
            principal = await authenticate(session, TEST_SECRET, rights_world.keys["vendor_admin"])
            cancellation = await requests.cancel(
                session, principal, subscription.id, received_at=await env.get_current_time()
            )
            await session.commit()
            await start_cancellation_workflow(client, queued, session, cancellation.id)
        await client.get_workflow_handle(cancellation.workflow_id, result_type=ProcessState).result()
        await skip(env, timedelta(days=300))  # past the effective end
        assert (await handle.result()).status == "expired"
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "subscription_cancelled_and_expired")
