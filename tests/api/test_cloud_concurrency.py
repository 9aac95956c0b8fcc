"""Races on one cloud container, fired through the ASGI app on both databases (PostgreSQL is the one that counts).

Invariants checked afterwards: after concurrent rotations exactly one of the credentials handed out works and
no rotation was lost; concurrent first accesses from many devices seat at most the limit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.models import Activation
from tessera.cloud.models import CloudContainer, CloudDevice
from tessera.models import Product
from tests.conftest import RightsWorld, bearer

CONTAINERS = "/api/v1/cloud-containers"
CONCURRENT = 10


async def _container(api: AsyncClient, world: RightsWorld) -> tuple[str, str]:
    created = await api.post(CONTAINERS, json={}, headers=bearer(world.keys["m_C1"]))
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["credential_file"]["credential"]


async def test_concurrent_rotations_leave_exactly_one_working_credential(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    container_id, first = await _container(api, rights_world)
    auth = bearer(rights_world.keys["m_C1"])
    responses = await asyncio.gather(
        *(api.post(f"{CONTAINERS}/{container_id}/credentials", headers=auth) for _ in range(CONCURRENT))
    )
    assert Counter(r.status_code for r in responses) == {200: CONCURRENT}, [r.text for r in responses]
    issued = [first, *(r.json()["credential_file"]["credential"] for r in responses)]
    assert len(set(issued)) == CONCURRENT + 1
    generations = sorted(r.json()["credential_generation"] for r in responses)
    assert generations == list(range(2, CONCURRENT + 2))
    last = next(r for r in responses if r.json()["credential_generation"] == CONCURRENT + 1)
    winner = last.json()["credential_file"]["credential"]
    # The last rotation's credential first: ten failed look-ups afterwards reach the client's limit, not before.
    answers = [
        await api.post(f"{CONTAINERS}/{container_id}/access", json={"credential": credential, "device_id": "d"})
        for credential in [winner, *(c for c in issued if c != winner)]
    ]
    assert [a.status_code for a in answers] == [200] + [401] * CONCURRENT
    async with sessions() as session:
        container = await session.get(CloudContainer, uuid.UUID(container_id))
        assert container is not None
        assert container.credential_generation == CONCURRENT + 1  # every rotation counted: none lost


async def test_concurrent_first_accesses_seat_at_most_the_limit(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    container_id, credential = await _container(api, rights_world)
    path = f"{CONTAINERS}/{container_id}/access"
    responses = await asyncio.gather(
        *(api.post(path, json={"credential": credential, "device_id": f"device-{n}"}) for n in range(CONCURRENT))
    )
    assert Counter(r.status_code for r in responses) == {200: 3, 409: CONCURRENT - 3}, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"device-limit-reached"}
    seated = sorted(r.json()["device_id"] for r in responses if r.status_code == 200)
    async with sessions() as session:
        recorded = await session.scalars(
            select(CloudDevice.device_id).where(CloudDevice.container_id == uuid.UUID(container_id))
        )
        assert sorted(recorded.all()) == seated
        assert await session.scalar(select(func.count()).select_from(CloudDevice)) == 3
    # The same device racing itself takes one seat, not several.
    again = await asyncio.gather(
        *(api.post(path, json={"credential": credential, "device_id": seated[0]}) for _ in range(5))
    )
    assert {r.status_code for r in again} == {200}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CloudDevice)) == 3


async def test_a_deletion_racing_activations_leaves_no_activation_in_the_deleted_container(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as session:
        await session.execute(
            update(Product).where(Product.id == w.product_id).values(container_kinds=["cloud"], max_activations=3)
        )
        await session.commit()
    container_id, credential = await _container(api, w)
    already = {"kind": "cloud", "cloud_container_id": container_id, "credential": credential}
    first = await api.post("/api/v1/activations", json={"code": w.codes["own"], "container": already})
    assert first.status_code == 201, first.text
    codes = [w.codes[name] for name in ("subtree", "sibling", "foreign", "own_admins_only", "own_named")]
    racing = [api.post("/api/v1/activations", json={"code": code, "container": already}) for code in codes]
    deletion = api.delete(f"{CONTAINERS}/{container_id}", headers=bearer(w.keys["m_C1"]))
    answers = await asyncio.gather(*racing[:2], deletion, *racing[2:])
    deleted, activations = answers[2], [*answers[:2], *answers[3:]]
    assert deleted.status_code == 204, deleted.text
    assert {a.status_code for a in activations} <= {201, 401}, [a.text for a in activations]
    async with sessions() as session:
        left = await session.scalar(
            select(func.count()).where(
                Activation.container_id == f"cloud:{container_id}", Activation.status == "active"
            )
        )
        assert left == 0
        returned = await session.scalar(
            select(func.count()).where(
                Activation.container_id == f"cloud:{container_id}", Activation.status == "returned"
            )
        )
        assert returned == 1 + sum(a.status_code == 201 for a in activations)


async def test_releases_racing_new_devices_never_seat_more_than_the_limit(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    container_id, credential = await _container(api, rights_world)
    path = f"{CONTAINERS}/{container_id}/access"
    for n in range(3):
        assert (await api.post(path, json={"credential": credential, "device_id": f"seated-{n}"})).status_code == 200
    auth = bearer(rights_world.keys["m_C1"])
    releases = [api.delete(f"{CONTAINERS}/{container_id}/devices/seated-{n}", headers=auth) for n in range(3)]
    newcomers = [api.post(path, json={"credential": credential, "device_id": f"new-{n}"}) for n in range(8)]
    # Interleaved: a newcomer, a release, a newcomer, ... then the remaining newcomers.
    calls = [*(call for pair in zip(newcomers[:3], releases, strict=True) for call in pair), *newcomers[3:]]
    answers = await asyncio.gather(*calls)
    released = [a for a in answers if a.request.method == "DELETE"]
    arrived = [a for a in answers if a.request.method == "POST"]
    assert {a.status_code for a in released} == {204}
    assert {a.status_code for a in arrived} <= {200, 409}
    async with sessions() as session:
        seated = await session.scalar(select(func.count()).where(CloudDevice.container_id == uuid.UUID(container_id)))
    assert seated == sum(a.status_code == 200 for a in arrived) <= 3
