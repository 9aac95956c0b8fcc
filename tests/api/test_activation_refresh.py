"""Refresh's one statement on both databases: what the certificate says, `seq` under concurrent refreshes, and
the answers to bad input, a wrong secret and a returned activation."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.models import Activation
from tessera.models import License, Product
from tests.conftest import RightsWorld

ACTIVATIONS = "/api/v1/activations"
DEVICE = {"kind": "software", "fingerprint": "refresh-device-01"}
CONCURRENT = 16


def claims_of(certificate: str) -> dict[str, object]:
    payload = certificate.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


async def activated(api: AsyncClient, world: RightsWorld) -> dict[str, str]:
    answer = await api.post(ACTIVATIONS, json={"code": world.codes["own"], "container": DEVICE})
    assert answer.status_code == 201, answer.text
    created: dict[str, str] = answer.json()
    return created


async def test_the_certificate_says_what_the_license_says_now(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    created = await activated(api, rights_world)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    async with sessions() as session:
        license = await session.get_one(License, uuid.UUID(created["license_id"]))
        product_code = (await session.get_one(Product, license.product_id)).code
        await session.execute(
            update(License)
            .where(License.id == license.id)
            .values(modules=["render", "export"], fields={"seats": 7, "note": "é"}, expires_at=ends)
        )
        await session.commit()
    answer = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert set(answer.json()) == {"certificate"}
    claims = claims_of(answer.json()["certificate"])
    assert claims["sub"] == created["license_id"]
    assert claims["aud"] == "software:refresh-device-01"
    assert claims["license"] == {
        "product": product_code,
        "modules": ["render", "export"],
        "fields": {"seats": 7, "note": "é"},
        "status": "active",
        "expires_at": ends.isoformat(),
        "activation_id": created["activation_id"],
        "seq": 2,
    }


async def test_concurrent_refreshes_each_get_their_own_seq(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    created = await activated(api, rights_world)
    refresh = f"{ACTIVATIONS}/{created['activation_id']}/refresh"
    answers = await asyncio.gather(*(api.post(refresh, json={"secret": created["secret"]}) for _ in range(CONCURRENT)))
    assert [a.status_code for a in answers] == [200] * CONCURRENT, [a.text for a in answers]
    seqs = sorted(int(claims_of(a.json()["certificate"])["license"]["seq"]) for a in answers)  # type: ignore[index]
    assert seqs == list(range(2, CONCURRENT + 2))
    async with sessions() as session:
        assert await session.scalar(select(Activation.seq)) == CONCURRENT + 1


async def test_a_wrong_secret_changes_nothing(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    created = await activated(api, rights_world)
    for activation_id, secret in (
        (created["activation_id"], created["secret"] + "x"),
        (str(uuid.uuid4()), created["secret"]),
    ):
        answer = await api.post(f"{ACTIVATIONS}/{activation_id}/refresh", json={"secret": secret})
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "activation-not-found"
    async with sessions() as session:
        assert await session.scalar(select(Activation.seq)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "secret"),
        ({"secret": ""}, "secret"),
        ({"secret": "tsa_" + "a" * 200}, "secret"),
        ({"secret": "tsa_a\u0000b"}, "secret"),
        ({"secret": "tsa_a\u202eb"}, "secret"),
        ({"secret": 12}, "secret"),
        ({"secret": "tsa_a", "seq": 3}, "seq"),
    ],
)
async def test_bad_bodies_are_refused_naming_the_field(
    api: AsyncClient, rights_world: RightsWorld, body: dict[str, object], field: str
) -> None:
    created = await activated(api, rights_world)
    answer = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.text


async def test_a_malformed_id_or_body_is_refused(api: AsyncClient, rights_world: RightsWorld) -> None:
    created = await activated(api, rights_world)
    not_an_id = await api.post(f"{ACTIVATIONS}/not-an-id/refresh", json={"secret": created["secret"]})
    assert not_an_id.status_code == 422, not_an_id.text
    not_json = await api.post(
        f"{ACTIVATIONS}/{created['activation_id']}/refresh",
        content=b"{secret",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 422, not_json.text
