"""A workflow that proves the chain API/CLI -> Temporal -> worker -> database works (`tessera check`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow


class SystemCheckInput(BaseModel):
    requested_by: str


class SystemCheckResult(BaseModel):
    worker_identity: str
    tessera_version: str
    product_count: int
    organization_count: int


@workflow.defn(name="SystemCheckWorkflow")
class SystemCheckWorkflow:
    """Runs the `system.check` activity once and returns what the worker saw in the database."""

    @workflow.run
    async def run(self, check: SystemCheckInput) -> SystemCheckResult:
        result: SystemCheckResult = await workflow.execute_activity(
            "system.check",
            check,
            result_type=SystemCheckResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result
