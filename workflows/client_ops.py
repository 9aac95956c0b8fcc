"""Starting workflows from outside (CLI, API): ids from business keys, one place for the options."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tessera.settings import Settings
from workflows.connection import connect_temporal
from workflows.system_check import SystemCheckInput, SystemCheckResult, SystemCheckWorkflow


async def run_system_check(settings: Settings, *, timeout_seconds: float = 30.0) -> SystemCheckResult:
    client = await connect_temporal(settings)
    return await client.execute_workflow(
        SystemCheckWorkflow.run,
        SystemCheckInput(requested_by="cli"),
        id=f"system-check-{uuid.uuid4()}",
        task_queue=settings.task_queue,
        execution_timeout=timedelta(seconds=timeout_seconds),
    )
