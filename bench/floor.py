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


class ShapeAt(BaseModel):
    at: datetime
    continued: bool = False


@workflow.defn(name="RenewalShapeFloorWorkflow")
class RenewalShapeFloorWorkflow:
    """A renewal's shape with nothing in it: sleep until one instant, one no-op local activity, continue as new;
    the new run finishes at once. What Temporal itself costs per renewal, before any of Tessera's work."""

    @workflow.run
    async def run(self, shape: ShapeAt) -> None:
        if shape.continued:
            return
        await workflow.sleep(max(shape.at - workflow.now(), timedelta(0)))
        await workflow.execute_local_activity(noop, Nothing(), start_to_close_timeout=timedelta(seconds=30))
        workflow.continue_as_new(ShapeAt(at=shape.at, continued=True))
