"""Recovery activities called directly, twice each: a retry frees no second slot and changes nothing more; a
recovery whose activation was returned meanwhile ends as superseded; a rejection leaves the activation alone."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.recovery import RecoveryActivities
from tessera.activation.models import Activation
from tessera.activation.recovery import request_recovery
from tessera.activation.recovery_models import ActivationRecovery
from tessera.activation.returns import free_activation
from tessera.apikeys import authenticate
from tessera.models import Ticket
from tests.conftest import TEST_SECRET, RightsWorld
from workflows.recovery_models import RecoveryRef


async def _activation(sessions: async_sessionmaker[AsyncSession], world: RightsWorld, ticket: str) -> uuid.UUID:
    async with sessions() as session:
        activation = Activation(
            ticket_id=world.tickets[ticket],
            license_id=world.licenses[ticket],
            container_kind="software",
            container_id=f"software:activity-{ticket}",
            status="active",
            secret_hash=bytes(32),
            seq=1,
        )
        session.add(activation)
        ticket_row = await session.get_one(Ticket, world.tickets[ticket])
        ticket_row.status = "activated"
        await session.commit()
        return activation.id


async def _requested(sessions: async_sessionmaker[AsyncSession], world: RightsWorld, activation_id: uuid.UUID) -> str:
    async with sessions() as session:
        admin = await authenticate(session, TEST_SECRET, world.keys["customer_admin"])
        requested = await request_recovery(session, admin, activation_id)
        await session.commit()
        return str(requested.recovery.id)


async def _state(sessions: async_sessionmaker[AsyncSession], activation_id: uuid.UUID) -> tuple[str, str, str]:
    async with sessions() as session:
        activation = await session.get_one(Activation, activation_id)
        recovery = await session.scalar(
            select(ActivationRecovery).where(ActivationRecovery.activation_id == activation_id)
        )
        ticket = await session.get_one(Ticket, activation.ticket_id)
        assert recovery is not None
        return activation.status, recovery.status, ticket.status


async def test_recover_twice_frees_one_slot(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities = RecoveryActivities(sessions)
    activation_id = await _activation(sessions, rights_world, "own")
    ref = RecoveryRef(recovery_id=await _requested(sessions, rights_world, activation_id))
    assert await activities.recover(ref) == "recovered"
    first = await _state(sessions, activation_id)
    assert first == ("recovered", "recovered", "returned")
    assert await activities.recover(ref) == "recovered"
    assert await activities.reject(ref) == "recovered"  # too late to reject: what was done stays
    assert await _state(sessions, activation_id) == first


async def test_reject_twice_leaves_the_activation_alone(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities = RecoveryActivities(sessions)
    activation_id = await _activation(sessions, rights_world, "own")
    ref = RecoveryRef(recovery_id=await _requested(sessions, rights_world, activation_id))
    assert await activities.reject(ref) == "rejected"
    assert await activities.reject(ref) == "rejected"
    assert await activities.recover(ref) == "rejected"  # a late recover step changes nothing either
    assert await _state(sessions, activation_id) == ("active", "rejected", "activated")


async def test_an_activation_returned_meanwhile_supersedes_the_recovery(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities = RecoveryActivities(sessions)
    activation_id = await _activation(sessions, rights_world, "own")
    ref = RecoveryRef(recovery_id=await _requested(sessions, rights_world, activation_id))
    async with sessions() as session:  # the device turned up and gave its license back during the lock period
        assert await free_activation(session, activation_id)
        await session.commit()
    assert await activities.recover(ref) == "superseded"
    assert await activities.recover(ref) == "superseded"
    assert await _state(sessions, activation_id) == ("returned", "superseded", "returned")
