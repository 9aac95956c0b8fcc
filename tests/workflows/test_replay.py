"""Replay: saved histories of LicenseOrderWorkflow must replay against the current code without a difference.

A change to the workflow code that would break running orders fails here; such a change needs
`workflow.patched()` and a new history beside the old ones. Saved histories are never re-recorded or edited:
`SHA256SUMS` (the first ones) or a `<history>.sha256` beside it lists each with its hash, and a test fails when a
file differs from it or is not listed. Record the
histories of the scenarios below with `TESSERA_RECORD_HISTORIES=1 ./bin/test tests/workflows/test_replay.py`:
recording never overwrites a file, it writes the next free name and its own `.sha256`; commit what you keep.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

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
from tests.workflows.sandbox_probe import SandboxProbeWorkflow
from workflows.license_order import LicenseOrderWorkflow
from workflows.order_models import ApprovalDecision, DecisionResult
from workflows.worker import WORKFLOW_RUNNER

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
    # The worker's own sandbox settings, so replay passes through exactly what the worker does.
    return Replayer(
        workflows=[LicenseOrderWorkflow], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )


def saved_histories() -> list[Path]:
    return sorted(HISTORIES.glob("license_order_*.json"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict[str, str]:
    """File name -> sha256: `SHA256SUMS` (the first histories) and one `<history>.sha256` beside each later one.

    Both are in the format `sha256sum -c` reads. A new history brings its own file, so recording one never
    changes a file that was saved before.
    """
    entries: dict[str, str] = {}
    for listing in [HISTORIES / "SHA256SUMS", *sorted(HISTORIES.glob("*.json.sha256"))]:
        for line in listing.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                entries[name.lstrip("*")] = digest
    return entries


def save_history(history: WorkflowHistory, stem: str) -> Path:
    """Write a new history file, never over an existing one (the next free `stem_N.json`), and list it."""
    path, number = HISTORIES / f"{stem}.json", 2
    while path.exists():
        path, number = HISTORIES / f"{stem}_{number}.json", number + 1
    with path.open("x") as file:  # "x": fails rather than overwrite, even in a race
        file.write(json.dumps(history.to_json_dict(), indent=1))
    with (HISTORIES / f"{path.name}.sha256").open("x") as sums:
        sums.write(f"{_sha256(path)}  {path.name}\n")
    return path


def test_saved_histories_are_never_modified() -> None:
    listed = manifest()
    on_disk = {path.name for path in HISTORIES.glob("*.json")}
    assert on_disk == set(listed), (
        f"every history is listed (SHA256SUMS or its .sha256), and only those: {on_disk ^ set(listed)}"
    )
    changed = [name for name, digest in listed.items() if _sha256(HISTORIES / name) != digest]
    assert not changed, f"saved histories are never edited or re-recorded; record a new one instead: {changed}"


def test_recording_never_overwrites_a_saved_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = WorkflowHistory.from_json("h", json.loads(saved_histories()[0].read_text()))
    monkeypatch.setattr(sys.modules[__name__], "HISTORIES", tmp_path)
    (tmp_path / "SHA256SUMS").write_text("")
    first, second = save_history(history, "license_order_x"), save_history(history, "license_order_x")
    assert (first.name, second.name) == ("license_order_x.json", "license_order_x_2.json")
    assert manifest() == {first.name: _sha256(first), second.name: _sha256(second)}


# The probe imports SQLAlchemy inside the sandbox on purpose; the sandbox says so for each of its modules.
@pytest.mark.filterwarnings("ignore:Module .* was imported after initial workflow load")
async def test_a_non_deterministic_call_reached_from_workflow_code_is_caught(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client, task_queue=queue, workflows=[SandboxProbeWorkflow], workflow_runner=WORKFLOW_RUNNER
    ):
        outcome = await time_skipping_env.client.execute_workflow(
            SandboxProbeWorkflow.run, id=f"probe-{uuid.uuid4()}", task_queue=queue
        )
    # Sandboxed, tessera.models fails at its first restricted call (SQLAlchemy's import already makes one);
    # passed through, as all of tessera once was, it would have handed the workflow the wall clock.
    assert outcome.startswith("caught:"), outcome


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
        save_history(history, "license_order_approved")


async def test_a_run_that_fails_after_notify_and_webhook_replays(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    steps = process(
        CREATE,
        {"kind": "notify", "name": "tell", "template": "order_fulfilled.txt.j2"},
        {"kind": "webhook", "event": "order.fulfilled"},
        {"kind": "wait", "name": "cool off", "duration": "P1D", "when": "order.fields.cooling_days > 3"},
    )
    order = await place_order(sessions, rights_world, quantity=2)
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        assert (await handle.result()).status == "failed"
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "license_order_failed_after_notify")


async def test_a_self_approved_run_replays(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    steps = process({**APPROVAL, "allow_self_approval": True}, CREATE, {"kind": "allocate", "to": "as_ordered"})
    order = await place_order(sessions, rights_world, quantity=2, requester="customer_admin")
    async with running_worker(time_skipping_env.client, settings, sessions) as queue:
        handle = await start(time_skipping_env.client, queue, await workflow_input(sessions, order, steps))
        await until_waiting(handle)
        decision = ApprovalDecision(user_id=str(rights_world.users["customer_admin"]), comment="my own budget")
        await handle.execute_update("approve", decision, result_type=DecisionResult)
        assert (await handle.result()).status == "fulfilled"
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
    if RECORD and database_url.startswith("sqlite"):
        save_history(history, "license_order_self_approval")
