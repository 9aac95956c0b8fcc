"""Tickets activated into cloud containers, certificates from `/access` verified against the JWKS alone, a deleted
container's activations returned, and failed credential look-ups limited (429 with Retry-After)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.activation.models import Activation
from tessera.models import Product, Ticket
from tessera.settings import Settings
from tests.conftest import RightsWorld, bearer

V1 = "/api/v1"
CONTAINERS = f"{V1}/cloud-containers"
ACTIVATIONS = f"{V1}/activations"


@pytest.fixture
async def cloud_product(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> None:
    """The world's product may live in software containers and in cloud containers, two per license."""
    async with sessions() as session:
        await session.execute(
            update(Product)
            .where(Product.id == rights_world.product_id)
            .values(container_kinds=["software", "cloud"], max_activations=2)
        )
        await session.commit()


async def _container(api: AsyncClient, world: RightsWorld, who: str = "customer_admin") -> tuple[str, str]:
    body = {"organization_id": str(world.orgs["C1"]), "for_organization": True}
    created = await api.post(CONTAINERS, json=body, headers=bearer(world.keys[who]))
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["credential_file"]["credential"]


def _cloud(container_id: str, credential: str) -> dict[str, str]:
    return {"kind": "cloud", "cloud_container_id": container_id, "credential": credential}


async def _keys(api: AsyncClient) -> KeySet:
    return KeySet.import_key_set((await api.get("/.well-known/jwks.json")).json())


@pytest.mark.usefixtures("cloud_product")
async def test_activate_into_a_container_and_access_it_from_a_device(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    container_id, credential = await _container(api, w)
    bad = await api.post(ACTIVATIONS, json={"code": w.codes["own"], "container": _cloud(container_id, "tcc_wrong")})
    assert (bad.status_code, bad.json()["code"]) == (401, "invalid-credential")
    other_container, other_credential = await _container(api, w)
    crossed = await api.post(
        ACTIVATIONS, json={"code": w.codes["own"], "container": _cloud(container_id, other_credential)}
    )
    assert (crossed.status_code, crossed.json()["code"]) == (401, "invalid-credential")
    activated = await api.post(
        ACTIVATIONS, json={"code": w.codes["own"], "container": _cloud(container_id, credential)}
    )
    assert activated.status_code == 201, activated.text
    second = await api.post(
        ACTIVATIONS, json={"code": w.codes["subtree"], "container": _cloud(container_id, credential)}
    )
    assert second.status_code == 201, second.text
    keys = await _keys(api)
    first_claims = jwt.decode(activated.json()["certificate"], keys, algorithms=["EdDSA"]).claims
    assert first_claims["aud"] == f"cloud:{container_id}"

    access = await api.post(f"{CONTAINERS}/{container_id}/access", json={"credential": credential, "device_id": "ws-1"})
    assert access.status_code == 200, access.text
    granted = access.json()
    assert {c["license_id"] for c in granted["certificates"]} == {str(w.licenses["own"]), str(w.licenses["subtree"])}
    for issued in granted["certificates"]:
        claims = jwt.decode(issued["certificate"], keys, algorithms=["EdDSA"]).claims
        assert claims["aud"] == f"cloud:{container_id}"
        assert claims["sub"] == issued["license_id"]
        assert claims["license"]["activation_id"] == issued["activation_id"]
        assert claims["license"]["status"] == "active"
        assert claims["exp"] - claims["iat"] == 3600  # the short access lifetime, not the activation's 30 days
    again = await api.post(f"{CONTAINERS}/{container_id}/access", json={"credential": credential, "device_id": "ws-1"})
    seqs = {
        c["activation_id"]: jwt.decode(c["certificate"], keys, algorithms=["EdDSA"]).claims["license"]["seq"]
        for c in again.json()["certificates"]
    }
    assert seqs[activated.json()["activation_id"]] == 3  # activation 1, access 2, access again 3
    assert other_container != container_id


async def test_a_product_without_cloud_refuses_cloud_containers(api: AsyncClient, rights_world: RightsWorld) -> None:
    container_id, credential = await _container(api, rights_world)
    refused = await api.post(
        ACTIVATIONS, json={"code": rights_world.codes["own"], "container": _cloud(container_id, credential)}
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "container-kind-not-allowed")


@pytest.mark.usefixtures("cloud_product")
async def test_deleting_a_container_returns_its_activations(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    container_id, credential = await _container(api, w)
    body = {"code": w.codes["own"], "container": _cloud(container_id, credential)}
    activated = (await api.post(ACTIVATIONS, json=body)).json()
    member = await api.delete(f"{CONTAINERS}/{container_id}", headers=bearer(w.keys["customer_member"]))
    assert member.status_code == 404  # an organization's container is its administrators' only
    deleted = await api.delete(f"{CONTAINERS}/{container_id}", headers=bearer(w.keys["customer_admin"]))
    assert deleted.status_code == 204
    async with sessions() as session:
        activation = await session.get(Activation, uuid.UUID(activated["activation_id"]))
        assert activation is not None
        assert (activation.status, activation.returned_by_user_id) == ("returned", w.users["customer_admin"])
        ticket = await session.scalar(select(Ticket).where(Ticket.id == w.tickets["own"]))
        assert ticket is not None
        assert ticket.status == "returned"
    refresh = await api.post(
        f"{ACTIVATIONS}/{activated['activation_id']}/refresh", json={"secret": activated["secret"]}
    )
    assert (refresh.status_code, refresh.json()["code"]) == (409, "activation-returned")
    gone = await api.post(f"{CONTAINERS}/{container_id}/access", json={"credential": credential, "device_id": "d"})
    assert (gone.status_code, gone.json()["code"]) == (401, "invalid-credential")
    again = await api.post(ACTIVATIONS, json=body)
    assert (again.status_code, again.json()["code"]) == (401, "invalid-credential")
    # The ticket is free for another container; the deletion counted as no move of its own.
    elsewhere = {"code": w.codes["own"], "container": {"kind": "software", "fingerprint": "device-0042"}}
    assert (await api.post(ACTIVATIONS, json=elsewhere)).status_code == 201


@pytest.fixture
async def strict_api(settings: Settings) -> AsyncIterator[AsyncClient]:
    strict = settings.model_copy(
        update={"activation_failure_limit_client": "3/minute", "activation_failure_limit_global": "5/minute"}
    )
    app = create_app(strict)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, client=("198.51.100.7", 4711))
        async with AsyncClient(transport=transport, base_url="http://tessera.test") as client:
            yield client


@pytest.mark.usefixtures("cloud_product")
async def test_failed_credential_look_ups_are_limited(strict_api: AsyncClient, rights_world: RightsWorld) -> None:
    api = strict_api
    container_id, credential = await _container(api, rights_world)
    path = f"{CONTAINERS}/{container_id}/access"
    for attempt in range(3):
        wrong = await api.post(path, json={"credential": f"tcc_guess{attempt}", "device_id": "d"})
        assert wrong.status_code == 401
    limited = await api.post(path, json={"credential": credential, "device_id": "d"})
    assert (limited.status_code, limited.json()["code"]) == (429, "too-many-requests")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Activation with a credential is the same look-up, counted by the same limiter.
    body = {"code": rights_world.codes["own"], "container": _cloud(container_id, credential)}
    assert (await api.post(ACTIVATIONS, json=body)).status_code == 429
