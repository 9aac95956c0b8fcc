"""A certificate's life: renewal shows the new expiry, revocation comes back revoked, keys rotate and both verify."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.activation import keys
from tessera.licenses import codes
from tessera.licenses.fulfilment import revoke_licenses
from tessera.models import Subscription, Ticket
from tessera.settings import Settings
from tessera.subscriptions import service as subscriptions
from tests.api.subscriptions import add_subscription_products, make_subscription
from tests.conftest import TEST_SECRET, RightsWorld

ACTIVATIONS = "/api/v1/activations"
DEVICE = {"kind": "software", "fingerprint": "device-0001"}


async def published(api: AsyncClient) -> KeySet:
    return KeySet.import_key_set((await api.get("/.well-known/jwks.json")).json())


async def license_claim(api: AsyncClient, certificate: str) -> dict[str, object]:
    claims = jwt.decode(certificate, await published(api), algorithms=["EdDSA"]).claims
    return dict(claims["license"])


async def code_of(sessions: async_sessionmaker[AsyncSession], license_id: object) -> str:
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.license_id == license_id))
        assert ticket is not None
        return codes.decrypt_code(TEST_SECRET, ticket.id, ticket.code_encrypted)


async def test_refresh_after_renewal_carries_the_new_expiry(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await add_subscription_products(sessions, rights_world)
    made = await make_subscription(sessions, rights_world)
    code = await code_of(sessions, made.license_ids[0])
    created = (await api.post(ACTIVATIONS, json={"code": code, "container": DEVICE})).json()
    before = await license_claim(api, created["certificate"])
    assert before["status"] == "active"
    assert before["expires_at"] is not None
    async with sessions() as session:
        subscription = await session.get_one(Subscription, made.subscription_id)
        renewed = await subscriptions.renew(
            session, TEST_SECRET, made.subscription_id, subscription.term_no + 1, datetime.now(UTC)
        )
        await session.commit()
    assert renewed is not None
    answer = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    after = await license_claim(api, answer.json()["certificate"])
    assert after["seq"] == 2
    assert datetime.fromisoformat(str(after["expires_at"])) == renewed.ends_at
    assert datetime.fromisoformat(str(after["expires_at"])) > datetime.fromisoformat(str(before["expires_at"]))


async def test_refresh_after_revocation_says_revoked_and_the_ticket_is_done(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    code = rights_world.codes["own"]
    created = (await api.post(ACTIVATIONS, json={"code": code, "container": DEVICE})).json()
    async with sessions() as session:
        await revoke_licenses(session, [rights_world.licenses["own"]])
        await session.commit()
    answer = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    assert answer.status_code == 200
    claim = await license_claim(api, answer.json()["certificate"])
    assert claim["status"] == "revoked"
    elsewhere = {"kind": "software", "fingerprint": "device-0002"}
    refused = await api.post(ACTIVATIONS, json={"code": code, "container": elsewhere})
    assert refused.status_code == 409
    assert refused.json()["code"] == "ticket-revoked"


async def test_rotation_keeps_old_certificates_verifiable(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as api,
    ):
        await rotated_and_verified(api, app, sessions, rights_world)


async def test_a_rotation_elsewhere_takes_effect_after_the_cache_time(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys, "CACHE_SECONDS", 0.0)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as api,
    ):
        await api.get("/.well-known/jwks.json")
        async with sessions() as session:
            newer = await keys.rotate_signing_key(session, TEST_SECRET)
            await session.commit()
        # The process signs on with the key it holds while it reads the new one in the background.
        await api.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": DEVICE})
        await asyncio.sleep(0.5)
        new = (await api.post(ACTIVATIONS, json={"code": rights_world.codes["subtree"], "container": DEVICE})).json()
        assert jwt.decode(new["certificate"], await published(api), algorithms=["EdDSA"]).header["kid"] == newer.kid


async def rotated_and_verified(
    api: AsyncClient, app: FastAPI, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    old = (await api.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": DEVICE})).json()
    async with sessions() as session:
        newer = await keys.rotate_signing_key(session, TEST_SECRET)
        await session.commit()
    app.state.activation.keys.forget()  # as `tessera keys rotate` in this very process
    new = (await api.post(ACTIVATIONS, json={"code": rights_world.codes["subtree"], "container": DEVICE})).json()
    published_keys = await published(api)
    old_token = jwt.decode(old["certificate"], published_keys, algorithms=["EdDSA"])
    new_token = jwt.decode(new["certificate"], published_keys, algorithms=["EdDSA"])
    assert new_token.header["kid"] == newer.kid
    assert old_token.header["kid"] != newer.kid
    # Once every certificate of the retired key has expired, it leaves the JWKS.
    async with sessions() as session:
        later = datetime.now(UTC) + timedelta(days=40)
        kids = [key.kid for key in await keys.published_keys(session, later)]
    assert kids == [newer.kid]
