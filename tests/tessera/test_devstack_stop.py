"""`tessera dev` stops its children within a deadline, even those that ignore SIGTERM, grandchildren included."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tessera.devstack import STOP_DEADLINE_SECONDS, Child, spawn, stop_all
from tests.e2e.stack import alive

# Ignores SIGTERM, starts a grandchild that ignores it too, writes both pids, then hangs: a stuck process.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {grandchild.pid}")
time.sleep(600)
"""


def _start(tmp_path: Path, name: str) -> tuple[Child, list[int]]:
    pids_file = tmp_path / f"{name}.pids"
    child = spawn(name, [sys.executable, "-c", STUBBORN, str(pids_file)], dict(os.environ))
    deadline = time.monotonic() + 30
    while not (pids_file.exists() and pids_file.read_text().count(" ") == 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, [int(pid) for pid in pids_file.read_text().split()]


def test_stuck_children_and_their_children_are_killed_within_the_deadline(tmp_path: Path) -> None:
    first, first_pids = _start(tmp_path, "first")
    second, second_pids = _start(tmp_path, "second")
    started = time.monotonic()
    stop_all([first, second])
    took = time.monotonic() - started
    assert took < STOP_DEADLINE_SECONDS + 2, took
    time.sleep(0.2)
    assert not [pid for pid in first_pids + second_pids if alive(pid)]
