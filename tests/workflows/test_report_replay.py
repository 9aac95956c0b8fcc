"""Replay: the saved histories of ReportWorkflow and ReportScheduleWorkflow replay against the code.

Recorded by tests/workflows/test_report_workflow.py with `TESSERA_RECORD_HISTORIES=1`, into new files only.
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
from workflows.report import ReportScheduleWorkflow, ReportWorkflow
from workflows.worker import WORKFLOW_RUNNER


def saved() -> list[Path]:
    return sorted(HISTORIES.glob("report_*.json"))


@pytest.mark.parametrize("path", saved(), ids=lambda path: path.stem)
async def test_saved_report_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(await asyncio.to_thread(path.read_text)))
    replayer = Replayer(
        workflows=[ReportWorkflow, ReportScheduleWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )
    await replayer.replay_workflow(history)


def test_both_report_workflows_have_a_saved_history() -> None:
    assert {path.stem for path in saved()} >= {"report_renewals", "report_schedule"}
