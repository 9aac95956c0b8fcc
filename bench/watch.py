"""Watching a worker: when activities and workflow runs finish, counted from interceptors that change nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)


@dataclass
class Seen:
    """Wall-clock moments observed inside the worker (interceptors only watch; they change nothing)."""

    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)

    def note(self, what: str, took: float = 0.0) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.last[what] = time.time()
        self.busy[what] = self.busy.get(what, 0.0) + took


class _ActivityWatch(ActivityInboundInterceptor):
    def __init__(self, nxt: ActivityInboundInterceptor, seen: Seen) -> None:
        super().__init__(nxt)
        self._seen = seen

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002 (the SDK's name)
        began = time.perf_counter()
        result = await super().execute_activity(input)
        self._seen.note(getattr(input.fn, "__temporal_activity_definition").name, time.perf_counter() - began)
        return result


class _WorkflowWatch(WorkflowInboundInterceptor):
    seen = Seen()

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:  # noqa: A002
        if not workflow.unsafe.is_replaying():
            type(self).seen.note("started")
        result = await super().execute_workflow(input)
        if not workflow.unsafe.is_replaying():
            type(self).seen.note("woke")
        return result


class Watch(Interceptor):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        return _ActivityWatch(next, self.seen)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:  # noqa: A002, ARG002
        _WorkflowWatch.seen = self.seen
        return _WorkflowWatch
