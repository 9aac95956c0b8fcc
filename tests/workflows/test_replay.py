"""Replay: saved histories of LicenseOrderWorkflow must replay against the current code without a difference.

A change to the workflow code that would break running orders fails here; such a change needs
`workflow.patched()`. Record a new history after a deliberate change with
`TESSERA_RECORD_HISTORIES=1 ./bin/test tests/workflows/test_replay.py` and commit the file it writes.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tessera.licenses.codes import decrypt_code
from tessera.models import License, Ticket
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import (
    APPROVAL,
    CREATE,
    place_order,
    process,
    running_worker,
    start,
    until_waiting,
    workflow_input,
)
from workflows.license_order import LicenseOrderWorkflow
from workflows.order_models import ApprovalDecision, DecisionResult

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("TESSERA_RECORD_HISTORIES") == "1"

STEPS = process(
    {**APPROVAL, "when": "order.quantity > 1"},
    CREATE,
    {"kind": "allocate", "to": "organization"},
    {"kind": "visibility", "visible_to": "all_members"},
    {"kind": "notify", "name": "tell", "template": "order_fulfilled.txt.j2"},
    {"kind": "webhook", "event": "order.fulfilled"},
)


def _replayer() -> Replayer:
    return Replayer(workflows=[LicenseOrderWorkflow], data_converter=pydantic_data_converter)


def saved_histories() -> list[Path]:
    return sorted(HISTORIES.glob("license_order_*.json"))


@pytest.mark.parametrize("path", saved_histories(), ids=lambda path: path.stem)
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(await asyncio.to_thread(path.read_text)))
    await _replayer().replay_workflow(history)


def test_there_is_a_saved_history_to_replay() -> None:
    assert saved_histories(), "record one with TESSERA_RECORD_HISTORIES=1"


async def test_a_fresh_run_replays_and_keeps_ticket_codes_out_of_its_history(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    order = await place_order(sessions, rights_world, quantity=2, requester="customer_member")
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, STEPS))
        await until_waiting(handle)
        decision = ApprovalDecision(user_id=str(rights_world.users["customer_admin"]), comment="fine")
        await handle.execute_update("approve", decision, result_type=DecisionResult)
        await handle.result()
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)

    async with sessions() as session:
        tickets = (await session.scalars(select(Ticket).join(License).where(License.order_id == order.id))).all()
    codes = [decrypt_code(TEST_SECRET, ticket.id, ticket.code_encrypted) for ticket in tickets]
    text = json.dumps(history.to_json_dict())
    assert len(codes) == 2
    for code in codes:
        assert code not in text
        assert code.replace("-", "") not in text

    if RECORD and database_url.startswith("sqlite"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "license_order_approved.json").write_text(json.dumps(history.to_json_dict(), indent=1))
