"""Failed ticket-code and secret look-ups are limited per client address and for everyone, at the edge: in one
process's memory, and in Redis shared by two real API processes (two uvicorn servers on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.e2e.stack import free_port

ACTIVATIONS = "/api/v1/activations"
UNKNOWN = "0000-0000-0000-0000-0000-0000-0000"
DEVICE = {"kind": "software", "fingerprint": "device-0001"}
REDIS_URL = os.environ.get("TESSERA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("TESSERA_REQUIRE_REDIS") == "1" or os.environ.get("CI") == "true"

Clients = Callable[[str], AbstractAsyncContextManager[AsyncClient]]


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Clients]:
    """Clients of one app whose limits are 3 failures per client and 6 overall; each client its own address."""
    app = create_app(
        settings.model_copy(
            update={"activation_failure_limit_client": "3/minute", "activation_failure_limit_global": "6/minute"}
        )
    )

    @asynccontextmanager
    async def client(address: str) -> AsyncIterator[AsyncClient]:
        transport = ASGITransport(app=app, client=(address, 40000))
        async with AsyncClient(transport=transport, base_url="http://tessera.test") as api:
            yield api

    async with app.router.lifespan_context(app):
        yield client


async def test_client_limit_at_the_edge(limited: Clients, rights_world: RightsWorld) -> None:
    async with limited("198.51.100.1") as guesser, limited("198.51.100.2") as neighbour:
        for _ in range(3):
            answer = await guesser.post(ACTIVATIONS, json={"code": UNKNOWN, "container": DEVICE})
            assert answer.status_code == 404
        blocked = await guesser.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": DEVICE})
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "too-many-requests"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # Another address is not held back by the first one's failures.
        allowed = await neighbour.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": DEVICE})
        assert allowed.status_code == 201, allowed.text
        # Successful look-ups never count: a device refreshes as often as it likes.
        created = allowed.json()
        for _ in range(6):
            refreshed = await neighbour.post(
                f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]}
            )
            assert refreshed.status_code == 200
        # Wrong secrets count like wrong codes.
        for _ in range(2):
            wrong = await neighbour.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": "tsa_x"})
            assert wrong.status_code == 404
        assert (
            await neighbour.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": "tsa_x"})
        ).status_code == 404
        held = await neighbour.post(
            f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]}
        )
        assert held.status_code == 429


async def test_global_limit_at_the_edge(limited: Clients) -> None:
    for n in range(6):
        async with limited(f"203.0.113.{n}") as api:
            assert (await api.post(ACTIVATIONS, json={"code": UNKNOWN, "container": DEVICE})).status_code == 404
    async with limited("203.0.113.99") as newcomer:
        answer = await newcomer.post(ACTIVATIONS, json={"code": UNKNOWN, "container": DEVICE})
    assert answer.status_code == 429
    assert "retry-after" in answer.headers


# --- two API processes sharing one limit in Redis ---------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if REQUIRE_REDIS:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {error}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {error}")
    return REDIS_URL


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/.well-known/jwks.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the API at {url} did not answer within 60 s")


@pytest.fixture
def two_api_processes(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `tessera api` processes on loopback, one SQLite database, one Redis, a key prefix of this test's own."""
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": sqlite_url,
        "TESSERA_SECRET_KEY": TEST_SECRET.decode(),
        "TESSERA_VAR_DIR": str(tmp_path / "var"),
        "TESSERA_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TESSERA_RATE_LIMIT_URL": redis_url,
        "TESSERA_RATE_LIMIT_PREFIX": f"test-{uuid.uuid4().hex}",
        "TESSERA_ACTIVATION_FAILURE_LIMIT_CLIENT": "4/minute",
        "TESSERA_ACTIVATION_FAILURE_LIMIT_GLOBAL": "1000/minute",
        "TESSERA_LOG_LEVEL": "warning",
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "tessera", "api"]
            processes.append(subprocess.Popen(command, env={**env, "TESSERA_API_PORT": str(port)}))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_until_up(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_two_processes_share_one_limit_in_redis(two_api_processes: list[str]) -> None:
    first, second = two_api_processes
    async with httpx.AsyncClient(timeout=30) as client:
        # Four failures, alternating between the processes: each alone has seen two.
        for n in range(4):
            url = (first, second)[n % 2]
            answer = await client.post(f"{url}{ACTIVATIONS}", json={"code": UNKNOWN, "container": DEVICE})
            assert answer.status_code == 404, answer.text
        for url in (first, second):
            blocked = await client.post(f"{url}{ACTIVATIONS}", json={"code": UNKNOWN, "container": DEVICE})
            assert blocked.status_code == 429, blocked.text
            assert int(blocked.headers["retry-after"]) >= 1
