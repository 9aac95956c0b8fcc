"""Run `tessera dev` as a subprocess on free ports in a temporary directory, as a user would."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tessera.settings import REPO_ROOT

STARTUP_SECONDS = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (children of children too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class DevStack:
    workdir: Path
    api_port: int = field(default_factory=free_port)
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def var_dir(self) -> Path:
        return self.workdir / "var"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
        env.update(
            TESSERA_VAR_DIR=str(self.var_dir),
            TESSERA_CONFIG_DIR=str(REPO_ROOT / "config"),
            TESSERA_API_PORT=str(self.api_port),
            TESSERA_TEMPORAL_PORT=str(self.temporal_port),
            TESSERA_TEMPORAL_UI_PORT=str(self.ui_port),
        )
        return env

    def start(self) -> None:
        self.output = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tessera.cli", "dev"],
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tessera dev exited with {self.process.returncode}:\n{self.text()}")
            try:
                if (
                    httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
                    and "Tessera is running" in self.text()
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"tessera dev did not become healthy:\n{self.text()}")

    def admin_key_printed(self) -> str | None:
        match = re.search(r"Admin API key \(shown once[^)]*\): (tsk_\S+)", self.text())
        return match.group(1) if match else None

    def admin_password_link_printed(self) -> str | None:
        """The link `tessera dev` prints at first start for setting the vendor admin's portal password."""
        match = re.search(r"Admin portal password \(set it once\): (\S+)", self.text())
        return match.group(1) if match else None

    def interrupt(self, timeout: float = 60.0) -> int:
        """SIGINT, as Ctrl-C would send; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for pid in descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
