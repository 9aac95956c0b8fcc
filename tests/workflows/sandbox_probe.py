"""A workflow that reaches tessera.models from workflow code, as a careless change might: the sandbox must catch it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError


@workflow.defn(name="SandboxProbeWorkflow")
class SandboxProbeWorkflow:
    """Says whether the sandbox stopped it from reading the wall clock through tessera.models."""

    @workflow.run
    async def run(self) -> str:
        """Call the database layer's clock; only a module the worker passes through would let that slip."""
        try:
            from tessera.models import utcnow

            return f"not caught: {utcnow().isoformat()}"
        except RestrictedWorkflowAccessError as refused:
            return f"caught: {refused}"
