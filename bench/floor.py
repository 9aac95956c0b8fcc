"""Floor workflows: the same shape as Tessera's, doing nothing, to measure what Temporal itself costs here."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity, workflow


class Nothing(BaseModel):
    activities: int = 1


@activity.defn(name="bench.noop")
async def noop(_: Nothing) -> Nothing:
    return Nothing()


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    """Runs `activities` no-op activities one after another."""

    @workflow.run
    async def run(self, shape: Nothing) -> Nothing:
        for _ in range(shape.activities):
            await workflow.execute_activity(noop, Nothing(), start_to_close_timeout=timedelta(seconds=30))
        return Nothing()


class WakeAt(BaseModel):
    at: datetime


@workflow.defn(name="HerdFloorWorkflow")
class HerdFloorWorkflow:
    """Sleeps until one instant, then finishes: what a herd of wake-ups costs Temporal itself."""

    @workflow.run
    async def run(self, wake: WakeAt) -> None:
        await workflow.sleep(max(wake.at - workflow.now(), timedelta(0)))
