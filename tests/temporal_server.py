"""A file-backed Temporal dev server as a child process that a test can kill (SIGKILL) and start again.

It is started exactly as `tessera dev` starts it (tessera/devstack.py: same flags, search attributes, SQLite
pragmas), minus the Web UI, on free loopback ports and a database file of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from tessera.devstack import port_answers, temporal_argv
from tessera.settings import Settings
from tests.e2e.stack import free_port

READY_SECONDS = 60.0


@dataclass
class RestartableTemporal:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.directory / "temporal.db"

    def argv(self) -> list[str]:
        settings = Settings(temporal_port=self.port, temporal_ui_port=free_port())
        return [*temporal_argv(settings, self.directory), "--headless"]

    async def start(self) -> None:
        """Start the server on the same port and file as before, and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "the server still runs"
        self.process = self._spawn()
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the Temporal server exited with {self.process.returncode}: {self.log()}")
            if port_answers(self.port):
                with contextlib.suppress(RuntimeError, RPCError):
                    client = await self.connect()
                    await client.count_workflows("WorkflowType = 'none'")
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the Temporal server did not answer within {READY_SECONDS:.0f} s: {self.log()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"temporal-{self.starts}.log").open("wb") as log:
            # A session of its own: its process group is what kill() ends, nothing else.
            process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        return process

    async def connect(self) -> Client:
        return await Client.connect(self.address, data_converter=pydantic_data_converter)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown, whatever was not on disk is lost."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")[-2000:] for path in sorted(self.directory.glob("temporal-*.log"))
        )
