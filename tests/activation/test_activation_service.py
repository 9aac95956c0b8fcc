"""The activation service on real databases: slots, containers, revocation, the certificate it signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.containers import DongleContainer, SoftwareContainer
from tessera.activation.errors import (
    ActivationsExhausted,
    ContainerKindNotAllowed,
    TicketNotFound,
    TicketRevoked,
)
from tessera.activation.keys import jwks_document, published_keys
from tessera.activation.models import Activation
from tessera.activation.returns import free_activation
from tessera.activation.service import activate
from tessera.licenses.fulfilment import revoke_licenses
from tessera.models import License, Ticket, TicketStatus
from tessera.settings import Settings
from tests.activation.world import runtime_for, set_product
from tests.conftest import RightsWorld

DEVICE = SoftwareContainer(kind="software", fingerprint="device-0001")


async def jwks(sessions: async_sessionmaker[AsyncSession]) -> KeySet:
    async with sessions() as session:
        return KeySet.import_key_set(jwks_document(await published_keys(session)))  # type: ignore[arg-type]


async def test_activation_signs_a_certificate_the_jwks_verifies(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    runtime = runtime_for(settings, sessions)
    async with sessions() as session:
        done = await activate(session, runtime, rights_world.codes["own"], DEVICE, client="198.51.100.7")
        await session.commit()
    assert done.created
    assert done.secret.startswith("tsa_")
    token = jwt.decode(done.certificate, await jwks(sessions), algorithms=["EdDSA"])
    assert token.header["typ"] == "license+jwt"
    claims = token.claims
    assert claims["sub"] == str(rights_world.licenses["own"])
    assert claims["aud"] == "software:device-0001"
    assert claims["license"]["status"] == "active"
    assert claims["license"]["seq"] == 1
    assert claims["license"]["activation_id"] == str(done.activation_id)
    assert claims["license"]["product"] == "PRO-CAD"
    assert claims["exp"] - claims["iat"] == 30 * 86400
    async with sessions() as session:
        ticket = await session.get_one(Ticket, rights_world.tickets["own"])
        assert ticket.status == TicketStatus.activated
        row = await session.get_one(Activation, done.activation_id)
        assert row.secret_hash != done.secret.encode()


async def test_same_container_again_is_the_same_activation_with_a_new_secret(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    runtime = runtime_for(settings, sessions)
    results = []
    for _ in range(2):
        async with sessions() as session:
            results.append(await activate(session, runtime, rights_world.codes["own"], DEVICE, client="c"))
            await session.commit()
    first, again = results
    assert again.activation_id == first.activation_id
    assert not again.created
    assert again.secret != first.secret
    assert again.seq == 2
    async with sessions() as session:
        count = len((await session.scalars(select(Activation))).all())
    assert count == 1


async def test_second_container_beyond_max_activations_is_refused(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    runtime = runtime_for(settings, sessions)
    async with sessions() as session:
        await activate(session, runtime, rights_world.codes["own"], DEVICE, client="c")
        await session.commit()
    other = SoftwareContainer(kind="software", fingerprint="device-0002")
    async with sessions() as session:
        with pytest.raises(ActivationsExhausted):
            await activate(session, runtime, rights_world.codes["own"], other, client="c")
    await set_product(sessions, rights_world.product_id, max_activations=2)
    async with sessions() as session:
        assert (await activate(session, runtime, rights_world.codes["own"], other, client="c")).created


async def test_unknown_revoked_and_wrong_kind_are_refused(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    runtime = runtime_for(settings, sessions)
    async with sessions() as session:
        with pytest.raises(TicketNotFound):
            await activate(session, runtime, "0000-0000-0000-0000-0000-0000-0000", DEVICE, client="c")
        dongle = DongleContainer(kind="dongle", serial="3-1234567")
        with pytest.raises(ContainerKindNotAllowed):
            await activate(session, runtime, rights_world.codes["own"], dongle, client="c")
    async with sessions() as session:
        await revoke_licenses(session, [rights_world.licenses["own"]])
        await session.commit()
    async with sessions() as session:
        with pytest.raises(TicketRevoked):
            await activate(session, runtime, rights_world.codes["own"], DEVICE, client="c")


async def test_a_time_limited_license_runs_from_its_first_activation(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await set_product(sessions, rights_world.product_id, kind="time_limited", expiry={"duration": "P1Y"})
    runtime = runtime_for(settings, sessions)
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    async with sessions() as session:
        await activate(session, runtime, rights_world.codes["own"], DEVICE, client="c", now=now)
        await session.commit()
    async with sessions() as session:
        license = await session.get_one(License, rights_world.licenses["own"])
    assert license.expires_at == datetime(2028, 3, 1, 12, tzinfo=UTC)
    # A later activation (after a return, elsewhere) does not start it again.
    later = now + timedelta(days=10)
    async with sessions() as session:
        activation_id = await session.scalar(select(Activation.id))
        assert activation_id is not None
        await free_activation(session, activation_id, now=later)
        await session.commit()
    async with sessions() as session:
        other = SoftwareContainer(kind="software", fingerprint="device-0002")
        await activate(session, runtime, rights_world.codes["own"], other, client="c", now=later)
        await session.commit()
        license = await session.get_one(License, rights_world.licenses["own"], populate_existing=True)
    assert license.expires_at == datetime(2028, 3, 1, 12, tzinfo=UTC)
