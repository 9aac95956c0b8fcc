"""Replay: saved histories of the recovery workflow replay against the code.

Recorded like the other histories (see test_replay.py): `TESSERA_RECORD_HISTORIES=1 ./bin/test
tests/workflows/test_recovery_workflow.py` writes new files next to the saved ones, each with a `.sha256` of its
own; saved files are never re-recorded or edited.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.test_replay import HISTORIES
from workflows.recovery import RecoveryWorkflow
from workflows.worker import WORKFLOW_RUNNER


def replayer() -> Replayer:
    return Replayer(
        workflows=[RecoveryWorkflow], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )


def saved() -> list[Path]:
    return sorted(HISTORIES.glob("recovery_*.json"))


def test_the_recovery_workflow_has_saved_histories() -> None:
    names = {path.stem for path in saved()}
    assert {"recovery_lock_period", "recovery_approved", "recovery_rejected"} <= names, (
        "record them with TESSERA_RECORD_HISTORIES=1"
    )


@pytest.mark.parametrize("path", saved(), ids=lambda path: path.stem)
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(await asyncio.to_thread(path.read_text)))
    await replayer().replay_workflow(history)
