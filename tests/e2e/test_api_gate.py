"""The real server (`tessera api`, uvicorn): anonymous and oversized uploads are refused without being held."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import free_port

pytestmark = pytest.mark.e2e

UPLOADS = 16
UPLOAD_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """`tessera api` on a free loopback port, one for the module (it takes seconds to start); (pid, port)."""
    tmp_path = tmp_path_factory.mktemp("api-gate")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
    env.update(
        TESSERA_VAR_DIR=str(tmp_path / "var"),
        TESSERA_API_PORT=str(port),
        TESSERA_TEMPORAL_ADDRESS="127.0.0.1:1",
        TESSERA_LOG_LEVEL="warning",
    )
    process = subprocess.Popen([sys.executable, "-m", "tessera.cli", "api"], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(10)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def upload(port: int, authorization: str | None, statuses: list[str]) -> None:
    """POST a 10 MB body the way a client that does not wait for the answer would."""
    head = "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    head += f"Content-Length: {UPLOAD_BYTES}\r\n\r\n"
    chunk = b"[" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        try:
            connection.sendall(head.encode())
            for _ in range(UPLOAD_BYTES // len(chunk)):
                connection.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: exactly what should happen
        try:
            statuses.append(connection.recv(64).decode(errors="replace").split("\r\n", 1)[0])
        except OSError as error:
            statuses.append(f"error {error}")


@pytest.mark.parametrize("authorization", [None, "Bearer tsk_" + "a" * 43])
def test_uploads_are_refused_without_being_held(server: tuple[int, int], authorization: str | None) -> None:
    pid, port = server
    before = rss_bytes(pid)
    statuses: list[str] = []
    threads = [threading.Thread(target=upload, args=(port, authorization, statuses)) for _ in range(UPLOADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    grown = rss_bytes(pid) - before
    expected = "HTTP/1.1 401" if authorization is None else "HTTP/1.1 413"
    assert [status[: len(expected)] for status in statuses] == [expected] * UPLOADS, statuses
    assert grown < 50 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MB for {UPLOADS} refused uploads"
