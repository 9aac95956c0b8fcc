"""Cloud container accesses per second and p99 latency, next to floors measured in the same run.

Each access opens a container with its credential under the container's row lock, seats (or recognises) the
device, and signs one short-lived certificate per license in it. Floors: a FastAPI endpoint reading one row by
primary key through the same database stack, and an activation's refresh (one certificate, no lock) on the same
server. `--containers` containers with `--licenses` licenses each, accessed at random from one device each, so the
load is not one hot row. Bounded: `--count` requests, `--concurrency` at once, the harness's time limit.

    python -m bench.cloud [--count 1000] [--concurrency 16] [--containers 40] [--licenses 2]
        [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from pathlib import Path

from sqlalchemy import update

from bench.activations import _settings, loader, postgres_database, server
from bench.harness import Figures, measure, ratio_line
from tessera.activation.containers import CloudContainer as CloudSpec
from tessera.activation.runtime import activation_runtime
from tessera.activation.service import activate
from tessera.apikeys import authenticate
from tessera.cloud import containers
from tessera.cloud.binding import register_cloud_kind
from tessera.db import create_engine, create_session_factory, migrate
from tessera.models import Product
from tests.conftest import TEST_SECRET, build_rights_world

TICKETS = ("own", "subtree", "sibling", "foreign", "own_admins_only", "own_named")


async def seed(
    url: str, directory: Path, count: int, licenses: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """`count` containers with `licenses` licenses each: (container id, credential); and (activation, secret)."""
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            world = await build_rights_world(session)
            await session.execute(update(Product).values(container_kinds=["software", "cloud"], max_activations=count))
            await session.commit()
        runtime = activation_runtime(_settings(url, directory), sessions, TEST_SECRET)
        register_cloud_kind(runtime.limits)
        made, activated = [], []
        for _ in range(count):
            async with sessions() as session:
                admin = await authenticate(session, TEST_SECRET, world.keys["vendor_admin"])
                container, file = await containers.create_container(
                    session, admin, TEST_SECRET, api_base_url="http://bench", organization_id=world.orgs["C1"],
                    for_organization=True,
                )  # fmt: skip
                await session.commit()
            made.append((str(container.id), file.credential))
            spec = CloudSpec(kind="cloud", cloud_container_id=container.id, credential=file.credential)
            for ticket in TICKETS[:licenses]:
                async with sessions() as session:
                    done = await activate(session, runtime, world.codes[ticket], spec, client="bench")
                    await session.commit()
                activated.append((str(done.activation_id), done.secret))
        return made, activated
    finally:
        await engine.dispose()


async def figures(url: str, directory: Path, label: str, arguments: argparse.Namespace) -> list[Figures]:
    made, activated = await seed(url, directory, arguments.containers, arguments.licenses)
    pick = random.Random(11)
    count, concurrency = arguments.count, arguments.concurrency
    results = []
    with server("bench.activation_apps:floor_app", url, directory) as base:
        async with loader(concurrency) as client:

            async def read_one(_index: int) -> None:
                (await client.get(f"{base}/floor/{pick.choice(activated)[0]}")).raise_for_status()

            await measure("warm-up", min(200, count), concurrency, read_one)
            results.append(await measure(f"floor: one row by key ({label})", count, concurrency, read_one))
    with server("bench.activation_apps:tessera_app", url, directory) as base:
        async with loader(concurrency) as client:

            async def refresh(_index: int) -> None:
                activation_id, secret = pick.choice(activated)
                path = f"{base}/api/v1/activations/{activation_id}/refresh"
                (await client.post(path, json={"secret": secret})).raise_for_status()

            async def access(_index: int) -> None:
                container_id, credential = pick.choice(made)
                body = {"credential": credential, "device_id": f"bench-{container_id[:8]}"}
                answer = await client.post(f"{base}/api/v1/cloud-containers/{container_id}/access", json=body)
                answer.raise_for_status()
                assert len(answer.json()["certificates"]) == arguments.licenses

            await measure("warm-up", min(200, count), concurrency, access)
            results.append(await measure(f"floor: refresh, 1 certificate ({label})", count, concurrency, refresh))
            name = f"access, {arguments.licenses} certificates ({label})"
            results.append(await measure(name, count, concurrency, access))
    return results


async def main(arguments: argparse.Namespace, databases: list[str]) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        for database in databases:
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{directory / 'tessera.db'}"
                migrate(url)
                floor, refresh, access = await figures(url, directory, "SQLite", arguments)
            else:
                with postgres_database() as url:
                    migrate(url)
                    floor, refresh, access = await figures(url, directory, "PostgreSQL", arguments)
            for line in (floor.line(), refresh.line(), access.line(), ratio_line(access, floor)):
                print(line)
            print(ratio_line(access, refresh))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="requests per measurement (bounded)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--containers", type=int, default=40)
    parser.add_argument("--licenses", type=int, default=2, choices=range(1, len(TICKETS) + 1))
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    arguments = parser.parse_args()
    arguments.count = min(arguments.count, 20_000)
    arguments.concurrency = min(arguments.concurrency, 256)
    arguments.containers = min(max(arguments.containers, 1), 1000)
    chosen = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    asyncio.run(main(arguments, chosen))
