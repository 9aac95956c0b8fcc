"""Races on one ticket, fired through the ASGI app on both databases: the ticket's row lock and the unique index
decide. Invariants checked afterwards: active activations ≤ max_activations, one activation per container,
returns within the period ≤ the moves allowed, and one signing key however many processes start at once."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.activation.keys import SigningKeys
from tessera.activation.models import Activation, ActivationStatus, OfflineExchange, SigningKey
from tessera.settings import Settings
from tests.activation.world import set_product
from tests.conftest import TEST_SECRET, RightsWorld

ACTIVATIONS = "/api/v1/activations"
CONCURRENT = 12


@pytest.fixture
async def api_three_moves(settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(
        settings.model_copy(update={"activation_moves": 3, "activation_failure_limit_client": "1000/minute"})
    )
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://tessera.test", timeout=60) as client,
    ):
        yield client


def device(n: int) -> dict[str, str]:
    return {"kind": "software", "fingerprint": f"device-{n:04d}"}


async def active_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.status == ActivationStatus.active)
        )
    return int(count or 0)


async def test_concurrent_activations_never_exceed_max_activations(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await set_product(sessions, rights_world.product_id, max_activations=3)
    code = rights_world.codes["own"]
    answers = await asyncio.gather(
        *(api_three_moves.post(ACTIVATIONS, json={"code": code, "container": device(n)}) for n in range(CONCURRENT))
    )
    assert Counter(a.status_code for a in answers) == {201: 3, 409: CONCURRENT - 3}, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"activations-exhausted"}
    assert await active_count(sessions) == 3


async def test_concurrent_activations_into_one_container_make_one(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    body = {"code": rights_world.codes["own"], "container": device(1)}
    answers = await asyncio.gather(*(api_three_moves.post(ACTIVATIONS, json=body) for _ in range(CONCURRENT)))
    assert Counter(a.status_code for a in answers) == {201: 1, 200: CONCURRENT - 1}, [a.text for a in answers]
    assert len({a.json()["activation_id"] for a in answers}) == 1
    assert await active_count(sessions) == 1
    async with sessions() as session:
        seq = await session.scalar(select(Activation.seq))
    assert seq == CONCURRENT  # each answer's certificate had its own seq


async def test_concurrent_returns_never_exceed_the_moves_allowed(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await set_product(sessions, rights_world.product_id, max_activations=6)
    code = rights_world.codes["own"]
    created = [
        (await api_three_moves.post(ACTIVATIONS, json={"code": code, "container": device(n)})).json() for n in range(6)
    ]
    answers = await asyncio.gather(
        *(
            api_three_moves.request("DELETE", f"{ACTIVATIONS}/{c['activation_id']}", json={"secret": c["secret"]})
            for c in created
        )
    )
    assert Counter(a.status_code for a in answers) == {200: 3, 429: 3}, [a.text for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    assert {a.json()["code"] for a in refused} == {"moves-exhausted"}
    assert all(int(a.headers["retry-after"]) > 29 * 86400 for a in refused)
    assert sorted(a.json()["moves_left"] for a in answers if a.status_code == 200) == [0, 1, 2]
    assert await active_count(sessions) == 3


async def test_concurrent_first_starts_create_one_signing_key(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    processes = [SigningKeys(sessions, TEST_SECRET) for _ in range(CONCURRENT)]
    signers = await asyncio.gather(*(keys.current() for keys in processes))
    assert len({signer.kid for signer in signers}) == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SigningKey)) == 1


def offline_request(code: str, nonce: str) -> dict[str, object]:
    return {"format": "tessera-offline-request/1", "code": code, "container": device(1), "nonce": nonce, "last_seq": 0}


async def test_one_request_file_uploaded_many_times_at_once_gets_one_answer(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    body = offline_request(rights_world.codes["own"], secrets.token_urlsafe(24))
    answers = await asyncio.gather(
        *(api_three_moves.post(f"{ACTIVATIONS}/offline", json=body) for _ in range(CONCURRENT))
    )
    assert {a.status_code for a in answers} == {200}, [a.text[:400] for a in answers if a.status_code != 200]
    assert len({a.text for a in answers}) == 1  # the identical answer, however the uploads met
    async with sessions() as session:
        seq = await session.scalar(select(Activation.seq))
        exchanges = await session.scalar(select(func.count()).select_from(OfflineExchange))
    assert (seq, exchanges) == (1, 1)


async def test_concurrent_offline_refreshes_from_one_seq_issue_one_certificate(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    first = (
        await api_three_moves.post(
            f"{ACTIVATIONS}/offline", json=offline_request(rights_world.codes["own"], secrets.token_urlsafe(24))
        )
    ).json()
    refreshes = [
        {
            "format": "tessera-offline-request/1",
            "activation_id": first["activation_id"],
            "secret": first["secret"],
            "container": device(1),
            "nonce": secrets.token_urlsafe(24),
            "last_seq": 1,
        }
        for _ in range(CONCURRENT)
    ]
    answers = await asyncio.gather(*(api_three_moves.post(f"{ACTIVATIONS}/offline", json=r) for r in refreshes))
    assert Counter(a.status_code for a in answers) == {200: 1, 409: CONCURRENT - 1}, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"offline-replay"}
    async with sessions() as session:
        assert await session.scalar(select(Activation.seq)) == 2


def seq_of(certificate: str) -> int:
    payload = certificate.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["license"]["seq"])


async def test_refreshes_and_reactivations_at_once_never_repeat_a_seq(
    api_three_moves: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    body = {"code": rights_world.codes["own"], "container": device(1)}
    created = (await api_three_moves.post(ACTIVATIONS, json=body)).json()
    refresh = f"{ACTIVATIONS}/{created['activation_id']}/refresh"
    calls = [
        api_three_moves.post(ACTIVATIONS, json=body)
        if n % 3 == 0
        else api_three_moves.post(refresh, json={"secret": created["secret"]})
        for n in range(CONCURRENT * 2)
    ]
    answers = await asyncio.gather(*calls)
    # Re-activation replaces the secret, so some refreshes find the old one wrong: 404, never anything else.
    assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers]
    seqs = [seq_of(a.json()["certificate"]) for a in answers if a.status_code == 200]
    assert len(seqs) == len(set(seqs)), sorted(seqs)
    async with sessions() as session:
        assert await session.scalar(select(Activation.seq)) == 1 + len(seqs)
