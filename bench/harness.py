"""What every benchmark shares: a file-backed dev server as `tessera dev` runs it, bounded load, figures.

Every figure is printed next to a floor measured in the same run on the same server, because these machines are
shared and noisy: only the ratio means something.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tessera.devstack import find_binary
from workflows.search_attributes import ALL_KEYS

MAX_SECONDS_PER_RUN = 180.0


@dataclass(frozen=True)
class Figures:
    name: str
    count: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<40} {self.count:>6} in {self.seconds:6.1f} s  {self.per_second:7.1f}/s  "
            f"p50 {self.percentile(0.5):7.1f} ms  p99 {self.percentile(0.99):7.1f} ms"
        )


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server on a file with the pragmas `tessera dev` uses, on a free loopback port."""
    with tempfile.TemporaryDirectory() as directory:
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=find_binary("temporal"),
            dev_server_database_filename=str(Path(directory) / "temporal.db"),
            search_attributes=ALL_KEYS,
            dev_server_extra_args=[
                "--sqlite-pragma", "journal_mode=wal",
                "--sqlite-pragma", "synchronous=normal",
                "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
            ],
        )  # fmt: skip
        try:
            yield env
        finally:
            await env.shutdown()


async def measure(name: str, count: int, in_flight: int, one: Callable[[int], Awaitable[None]]) -> Figures:
    """Run `one(i)` for i < count with at most `in_flight` at once; stop starting new ones after the time limit."""
    semaphore = asyncio.Semaphore(in_flight)
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + MAX_SECONDS_PER_RUN

    async def timed(index: int) -> None:
        async with semaphore:
            if time.perf_counter() > deadline:
                return
            begin = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - begin)

    await asyncio.gather(*(timed(i) for i in range(count)))
    return Figures(name, len(latencies), time.perf_counter() - started, latencies)


def ratio_line(subject: Figures, floor: Figures) -> str:
    ratio = subject.per_second / floor.per_second if floor.per_second else 0.0
    return f"=> {subject.name}: {ratio:.2f} x the floor ({floor.name}), measured in this run"


def report(subject: Figures, floor: Figures) -> None:
    """The floor, the subject, and their ratio: the three lines every benchmark ends with."""
    print(floor.line())
    print(subject.line())
    print(ratio_line(subject, floor))
