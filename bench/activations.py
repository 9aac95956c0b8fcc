"""Refresh requests per second and p99 latency, next to two floors measured in the same run.

Floors: a FastAPI endpoint reading one row by primary key through the same database stack (engine, session,
unit of work, on the same uvicorn), and Ed25519 signing of a certificate alone. Each server is a loopback
uvicorn process of its own (both up at once), loaded by a bounded async client in alternating rounds: `--count`
requests each in all, `--concurrency` at once, and never longer than the harness's time limit per round. SQLite
and PostgreSQL.

    python -m bench.activations [--count 2000] [--concurrency 32] [--database sqlite|postgresql|both] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from bench.harness import MAX_SECONDS_PER_RUN, Figures, measure, ratio_line
from tessera.activation.certificates import LicenseFacts, license_claims, sign_certificate
from tessera.activation.keys import SigningKeys
from tessera.activation.runtime import activation_runtime
from tessera.db import create_engine, create_session_factory, migrate
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import POSTGRES_URL, TEST_SECRET, build_rights_world
from tests.e2e.stack import free_port

ACTIVATIONS = 200
"""Activations refreshed at random, so the load is not one hot row."""


def _settings(url: str, directory: Path) -> Settings:
    return Settings(
        database_url=url,
        var_dir=directory,
        config_dir=REPO_ROOT / "config",
        secret_key=TEST_SECRET.decode(),
        temporal_address="127.0.0.1:1",
    )


async def seed(url: str, directory: Path) -> list[tuple[str, str]]:
    """The rights world, and ACTIVATIONS activations of one of its tickets: (activation id, secret) each."""
    from sqlalchemy import update

    from tessera.activation.containers import SoftwareContainer
    from tessera.activation.service import activate
    from tessera.models import Product

    engine = create_engine(url)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            world = await build_rights_world(session)
            await session.execute(update(Product).values(max_activations=ACTIVATIONS))
            await session.commit()
        runtime = activation_runtime(_settings(url, directory), sessions, TEST_SECRET)
        done = []
        for n in range(ACTIVATIONS):
            async with sessions() as session:
                device = SoftwareContainer(kind="software", fingerprint=f"bench-device-{n:05d}")
                activated = await activate(session, runtime, world.codes["own"], device, client="bench")
                await session.commit()
            done.append((str(activated.activation_id), activated.secret))
        return done
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(app: str, url: str, directory: Path) -> Iterator[Server]:
    """`app` (a factory) on a uvicorn process of its own on loopback."""
    port = free_port()
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": url,
        "TESSERA_SECRET_KEY": TEST_SECRET.decode(),
        "TESSERA_VAR_DIR": str(directory),
        "TESSERA_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TESSERA_ACTIVATION_FAILURE_LIMIT_CLIENT": "1000000/minute",
        "TESSERA_ACTIVATION_FAILURE_LIMIT_GLOBAL": "1000000/minute",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port)]
    # The rounds alternate: a server's idle keep-alive connections must outlast the other server's round.
    command += ["--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "300"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/", timeout=1)  # any answer: it listens
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def loader(concurrency: int) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        yield client


def combined(name: str, rounds: list[Figures]) -> Figures:
    """The rounds of one measurement as one: their requests, their time, all their latencies."""
    return Figures(
        name,
        sum(figures.count for figures in rounds),
        sum(figures.seconds for figures in rounds),
        [latency for figures in rounds for latency in figures.latencies],
    )


async def http_figures(
    url: str, directory: Path, label: str, count: int, concurrency: int, rounds: int
) -> tuple[Figures, Figures]:
    """The floor and refresh, both servers up, measured in alternating rounds of `count / rounds` requests each:
    on a shared machine the load changes by the minute, and alternating gives both the same share of it."""
    activations = await seed(url, directory)
    pick = random.Random(7)
    with (
        server("bench.activation_apps:floor_app", url, directory) as floor_server,
        server("bench.activation_apps:tessera_app", url, directory) as tessera_server,
    ):
        async with loader(concurrency) as client:
            # Requests built once, both kinds alike: the client shares the two cores with the servers, and
            # encoding a JSON body per request would cost the refresh's load more than the floor's.
            reads = [client.build_request("GET", f"{floor_server.base}/floor/{a}") for a, _secret in activations]
            posts = [
                client.build_request(
                    "POST",
                    f"{tessera_server.base}/api/v1/activations/{activation_id}/refresh",
                    content=json.dumps({"secret": secret}).encode(),
                    headers={"content-type": "application/json"},
                )
                for activation_id, secret in activations
            ]

            async def read_one(_index: int) -> None:
                (await client.send(pick.choice(reads))).raise_for_status()

            async def refresh(_index: int) -> None:
                (await client.send(pick.choice(posts))).raise_for_status()

            await measure("warm-up", min(200, count), concurrency, read_one)
            await measure("warm-up", min(200, count), concurrency, refresh)
            floors: list[Figures] = []
            refreshes: list[Figures] = []
            each = max(1, count // rounds)
            cpu = {"floor": 0.0, "refresh": 0.0, "floor client": 0.0, "refresh client": 0.0}
            for round_number in range(1, rounds + 1):
                for name, process, one, done in (
                    ("floor", floor_server, read_one, floors),
                    ("refresh", tessera_server, refresh, refreshes),
                ):
                    before, client_before = process.cpu_seconds(), time.process_time()
                    done.append(await measure(f"  {name}, round {round_number}", each, concurrency, one))
                    used, client_used = process.cpu_seconds() - before, time.process_time() - client_before
                    cpu[name] += used
                    cpu[f"{name} client"] += client_used
                    per = 1000 / max(1, done[-1].count)
                    print(
                        f"{done[-1].line()}  server CPU {used * per:5.2f}, client {client_used * per:5.2f} ms/request"
                    )
            # Less noisy than rates on a shared machine: what one request costs the server process in CPU.
            floor_cpu = cpu["floor"] * 1000 / max(1, sum(figures.count for figures in floors))
            refresh_cpu = cpu["refresh"] * 1000 / max(1, sum(figures.count for figures in refreshes))
            print(f"server CPU per request ({label}): floor {floor_cpu:.2f} ms, refresh {refresh_cpu:.2f} ms")
            # The load client shares the machine: what each kind of request costs it, too.
            floor_client = cpu["floor client"] * 1000 / max(1, sum(figures.count for figures in floors))
            refresh_client = cpu["refresh client"] * 1000 / max(1, sum(figures.count for figures in refreshes))
            print(f"client CPU per request ({label}): floor {floor_client:.2f} ms, refresh {refresh_client:.2f} ms")
    return combined(f"floor: one row by key ({label})", floors), combined(f"refresh ({label})", refreshes)


async def signing_floor(count: int, directory: Path) -> Figures:
    """Signing a certificate with joserfc alone, in this process, one after another."""
    url = f"sqlite+aiosqlite:///{directory / 'keys.db'}"
    migrate(url)
    engine = create_engine(url)
    try:
        now = datetime.now(UTC)
        signer = await SigningKeys(create_session_factory(engine), TEST_SECRET).signer(now + timedelta(days=30))
    finally:
        await engine.dispose()
    facts = LicenseFacts(uuid.uuid4(), "PRO-CAD", ["render"], {"seats": 2}, "active", "activated", None)
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        claims = license_claims(
            facts, issuer="bench", audience="software:x", activation_id=uuid.uuid4(), seq=1, now=now, exp=now
        )
        sign_certificate(signer, claims)
        latencies.append(time.perf_counter() - begin)
        if time.perf_counter() - started > MAX_SECONDS_PER_RUN:
            break
    return Figures("floor: Ed25519 signing alone", len(latencies), time.perf_counter() - started, latencies)


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"tessera_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(count: int, concurrency: int, databases: list[str], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        signing = await signing_floor(count, directory)
        print(signing.line())
        for database in databases:
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{directory / 'tessera.db'}"
                migrate(url)
                floor, subject = await http_figures(url, directory, "SQLite", count, concurrency, rounds)
            else:
                with postgres_database() as url:
                    migrate(url)
                    floor, subject = await http_figures(url, directory, "PostgreSQL", count, concurrency, rounds)
            print(floor.line())
            print(subject.line())
            print(ratio_line(subject, floor))
            print(ratio_line(subject, signing))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="requests per measurement (bounded)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of floor and refresh")
    arguments = parser.parse_args()
    chosen = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    asyncio.run(
        main(min(arguments.count, 20_000), min(arguments.concurrency, 256), chosen, max(1, min(arguments.rounds, 20)))
    )
