"""Rights services under races, each actor in its own session: the locks of tessera.rights.quota decide."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.apikeys import authenticate
from tessera.errors import Forbidden
from tessera.models import Grant, Organization, Permission
from tessera.orders.errors import QuotaExceeded
from tessera.orders.intake import reserve_quota
from tessera.rights import acting, grants, quota
from tessera.rights.grants import GrantValues
from tests.conftest import TEST_SECRET, RightsWorld


async def test_a_grant_withdrawn_after_the_rights_check_is_not_used(
    rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as ordering:
        customer = await authenticate(ordering, TEST_SECRET, w.keys["customer_admin"])
        right = await acting.authorize(ordering, customer, Permission.create, w.group_id, w.orgs["C1"])
        assert right.grant is not None
        await ordering.commit()  # the check is done; the reservation comes in a later statement
        async with sessions() as withdrawing:
            vendor = await authenticate(withdrawing, TEST_SECRET, w.keys["vendor_admin"])
            await grants.withdraw_grant(withdrawing, vendor, w.orgs["R1"], "CAD")  # C1's comes from R1's
            await withdrawing.commit()
        with pytest.raises(Forbidden, match="withdrawn"):
            await reserve_quota(ordering, right.grant.id, 1)
        await ordering.rollback()
    async with sessions() as session:
        assert (await session.get(Grant, w.grants["C1"])) is not None
        used = await session.scalar(select(Grant.quota_used).where(Grant.id == w.grants["C1"]))
    assert used == 0


async def test_an_order_waits_for_a_delegation_in_flight_and_then_sees_it(
    rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as delegating:
        reseller = await authenticate(delegating, TEST_SECRET, w.keys["reseller_admin"])
        c4 = Organization(kind="customer", parent_id=w.orgs["R1"], name="C4", custom_fields={})
        delegating.add(c4)
        await delegating.flush()
        # R1 has 85 left; this delegation takes all of it but is not committed yet.
        await grants.put_grant(
            delegating, reseller, c4.id, "CAD", GrantValues(frozenset({Permission.create}), 85, False)
        )

        async def order_everything() -> bool:
            async with sessions() as ordering:
                try:
                    await reserve_quota(ordering, w.grants["R1"], 85)
                except QuotaExceeded:
                    await ordering.rollback()
                    return False
                await ordering.commit()
                return True

        order = asyncio.create_task(order_everything())
        await asyncio.sleep(0.5)
        assert not order.done(), "the order did not wait for the delegation holding the grant"
        await delegating.commit()
    assert await asyncio.wait_for(order, timeout=30) is False
    async with sessions() as session:
        assert await quota.remaining_quota(session, w.grants["R1"]) == 0
        r1 = await session.get(Grant, w.grants["R1"])
        assert r1 is not None
        assert r1.quota_used == 0


async def test_concurrent_reservations_and_delegations_share_one_remainder(
    rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as session:
        for index in range(10):
            session.add(Organization(kind="customer", parent_id=w.orgs["R1"], name=f"D{index}", custom_fields={}))
        await session.commit()
        targets = list((await session.scalars(select(Organization.id).where(Organization.name.like("D%")))).all())

    async def delegate(org_id: uuid.UUID) -> bool:
        async with sessions() as session:
            reseller = await authenticate(session, TEST_SECRET, w.keys["reseller_admin"])
            try:
                await grants.put_grant(
                    session, reseller, org_id, "CAD", GrantValues(frozenset({Permission.create}), 10, False)
                )
            except Forbidden:
                await session.rollback()
                return False
            await session.commit()
            return True

    async def order() -> bool:
        async with sessions() as session:
            try:
                await reserve_quota(session, w.grants["R1"], 10)
            except QuotaExceeded:
                await session.rollback()
                return False
            await session.commit()
            return True

    results = await asyncio.wait_for(
        asyncio.gather(*(delegate(t) for t in targets), *(order() for _ in range(10))), timeout=120
    )
    assert sum(results) == 8  # 85 left: eight tens, whoever asks
    async with sessions() as session:
        assert await quota.remaining_quota(session, w.grants["R1"]) == 5
