"""The authorization service on a real database (SQLite and PostgreSQL): reach, the acting rule, delegation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.apikeys import authenticate
from tessera.errors import Conflict, Forbidden, NotFound
from tessera.models import Grant, GrantEvent, Organization, Permission, utcnow
from tessera.principal import Principal
from tessera.rights import acting, grants, quota, reach
from tessera.rights.grants import GrantValues
from tests.conftest import TEST_SECRET, RightsWorld


async def who(session: AsyncSession, world: RightsWorld, name: str) -> Principal:
    return await authenticate(session, TEST_SECRET, world.keys[name])


def values(*permissions: str, quota: int | None = None, delegable: bool = False) -> GrantValues:
    return GrantValues(frozenset(Permission(p) for p in permissions), quota, delegable)


async def test_the_nearest_grant_decides(session: AsyncSession, rights_world: RightsWorld) -> None:
    w = rights_world
    admin = await who(session, w, "customer_admin")
    right = await acting.authorize(session, admin, Permission.create, w.group_id, w.orgs["C1"])
    assert right.grant is not None
    assert right.grant.id == w.grants["C1"]
    # G1's own grant holds only allocate; C1's broader grant above it does not count for G1.
    with pytest.raises(Forbidden, match="create"):
        await acting.authorize(session, admin, Permission.create, w.group_id, w.orgs["G1"])
    right = await acting.authorize(session, admin, Permission.allocate, w.group_id, w.orgs["G1"])
    assert right.grant is not None
    assert right.grant.id == w.grants["G1"]
    reseller = await who(session, w, "reseller_admin")
    right = await acting.authorize(session, reseller, Permission.create, w.group_id, w.orgs["C2"])
    assert right.grant is not None
    assert right.grant.id == w.grants["C2"]
    with pytest.raises(Forbidden):  # C1's grant does not carry revoke, though R1's does
        await acting.authorize(session, reseller, Permission.revoke, w.group_id, w.orgs["C1"])


async def test_out_of_reach_is_not_found_and_members_are_forbidden(
    session: AsyncSession, rights_world: RightsWorld
) -> None:
    w = rights_world
    with pytest.raises(NotFound):
        await acting.authorize(
            session, await who(session, w, "foreign_admin"), Permission.create, w.group_id, w.orgs["C1"]
        )
    with pytest.raises(Forbidden):
        await acting.authorize(
            session, await who(session, w, "customer_member"), Permission.create, w.group_id, w.orgs["C1"]
        )
    vendor = await who(session, w, "vendor_admin")
    assert (await acting.authorize(session, vendor, Permission.revoke, w.group_id, w.orgs["C3"])).grant is None
    staff = await who(session, w, "vendor_staff")
    assert (await acting.authorize(session, staff, Permission.create, w.group_id, w.orgs["S"])).grant is not None
    with pytest.raises(NotFound):
        await acting.authorize(session, staff, Permission.create, w.group_id, w.orgs["C1"])


async def test_reach_lists_exactly_the_subtree_and_own_nodes(session: AsyncSession, rights_world: RightsWorld) -> None:
    w = rights_world
    names = {org_id: name for name, org_id in w.orgs.items()}
    expected = {
        "vendor_admin": set(w.orgs),
        "vendor_staff": {"V", "S"},
        "reseller_admin": {"R1", "C1", "G1", "C2"},
        "reseller_member": {"R1"},
        "customer_admin": {"C1", "G1"},
        "subgroup_member": {"G1"},
    }
    for principal, orgs in expected.items():
        caller = await who(session, w, principal)
        rows = await session.scalars(select(Organization.id).where(reach.organization_filter(caller)))
        assert {names[org] for org in rows.all()} == orgs, principal


async def test_a_reseller_delegates_at_most_its_remainder(session: AsyncSession, rights_world: RightsWorld) -> None:
    w = rights_world
    reseller = await who(session, w, "reseller_admin")
    c4 = Organization(kind="customer", parent_id=w.orgs["R1"], name="C4", custom_fields={})
    session.add(c4)
    await session.flush()
    r1 = await session.get(Grant, w.grants["R1"])
    assert r1 is not None
    assert await quota.remaining_quota(session, r1.id) == 100 - 10 - 5
    with pytest.raises(Forbidden) as refused:
        await grants.put_grant(session, reseller, c4.id, "CAD", values("create", quota=86))
    assert refused.value.issues[0].field == "quota"
    with pytest.raises(Forbidden) as refused:
        await grants.put_grant(session, reseller, c4.id, "CAD", values("create"))
    assert refused.value.issues[0].field == "quota"
    grant, created = await grants.put_grant(session, reseller, c4.id, "CAD", values("create", quota=85))
    assert created
    assert grant.parent_grant_id == r1.id
    assert await quota.remaining_quota(session, r1.id) == 0
    # Changing the same grant does not count its own quota twice.
    await grants.put_grant(session, reseller, c4.id, "CAD", values("create", quota=85))
    # Another customer's admin does not even see C4.
    with pytest.raises(NotFound):
        await grants.put_grant(session, await who(session, w, "sibling_admin"), c4.id, "CAD", values("create", quota=1))


async def test_withdrawing_a_grant_withdraws_what_was_delegated(
    session: AsyncSession, rights_world: RightsWorld
) -> None:
    w = rights_world
    customer = await who(session, w, "customer_admin")
    assert await acting.authorize(session, customer, Permission.create, w.group_id, w.orgs["C1"])
    await grants.withdraw_grant(session, await who(session, w, "vendor_admin"), w.orgs["R1"], "CAD")
    with pytest.raises(Forbidden):
        await acting.authorize(session, customer, Permission.create, w.group_id, w.orgs["C1"])
    withdrawn = await session.scalars(select(Grant.organization_id).where(Grant.withdrawn_at.is_not(None)))
    assert set(withdrawn.all()) == {w.orgs[name] for name in ("R1", "C1", "G1", "C2")}
    events = (await session.scalars(select(GrantEvent).where(GrantEvent.action == "withdrawn"))).all()
    assert len(events) == 4
    assert {event.actor_user_id for event in events} == {w.users["vendor_admin"]}
    assert sum(event.reason is None for event in events) == 1  # the one withdrawn on purpose; the rest cascaded


async def test_a_withdrawn_source_breaks_the_chain_even_if_the_copy_was_missed(
    session: AsyncSession, rights_world: RightsWorld
) -> None:
    w = rights_world
    r1 = await session.get(Grant, w.grants["R1"])
    assert r1 is not None
    r1.withdrawn_at = utcnow()  # as if the cascade had not reached C1's grant
    await session.flush()
    with pytest.raises(Forbidden, match="withdrawn"):
        await acting.authorize(
            session, await who(session, w, "customer_admin"), Permission.create, w.group_id, w.orgs["C1"]
        )


async def test_narrowing_a_grant_narrows_what_was_delegated(session: AsyncSession, rights_world: RightsWorld) -> None:
    w = rights_world
    reseller = await who(session, w, "reseller_admin")
    await grants.put_grant(session, reseller, w.orgs["C1"], "CAD", values("create", quota=10, delegable=True))
    g1 = await session.get(Grant, w.grants["G1"])
    assert g1 is not None
    assert g1.withdrawn_at is not None
    grant, created = await grants.put_grant(session, reseller, w.orgs["C1"], "CAD", values("create", quota=3))
    assert not created
    assert grant.quota == 3
    count = await session.scalar(select(func.count()).select_from(GrantEvent))
    assert count == 3  # changed, withdrawn (cascade), changed


async def test_quota_is_spent_by_creation(session: AsyncSession, rights_world: RightsWorld) -> None:
    w = rights_world
    assert (await quota.reserve(session, w.grants["C2"], 5)).reserved
    with pytest.raises(Forbidden, match="quota"):
        await acting.authorize(
            session, await who(session, w, "sibling_admin"), Permission.create, w.group_id, w.orgs["C2"]
        )


async def test_a_delegated_grant_never_carries_more_permissions(
    session: AsyncSession, rights_world: RightsWorld
) -> None:
    w = rights_world
    g2 = Organization(kind="group", parent_id=w.orgs["C1"], name="G2", custom_fields={})
    session.add(g2)
    await session.flush()
    customer = await who(session, w, "customer_admin")
    with pytest.raises(Forbidden) as refused:
        await grants.put_grant(session, customer, g2.id, "CAD", values("create", "revoke", quota=1))
    assert refused.value.issues[0].field == "permissions"
    grant, _created = await grants.put_grant(session, customer, g2.id, "CAD", values("create", quota=9))
    assert grant.parent_grant_id == w.grants["C1"]
    with pytest.raises(Forbidden):  # the customer admin did not delegate C1's grant: R1 did
        await grants.put_grant(session, customer, w.orgs["C1"], "CAD", values("create", quota=1))


async def test_a_grant_granted_again_still_counts_what_was_created_under_it(
    session: AsyncSession, rights_world: RightsWorld
) -> None:
    w = rights_world
    assert (await quota.reserve(session, w.grants["C2"], 3)).reserved
    reseller = await who(session, w, "reseller_admin")
    await grants.withdraw_grant(session, reseller, w.orgs["C2"], "CAD")
    with pytest.raises(Conflict) as refused:
        await grants.put_grant(session, reseller, w.orgs["C2"], "CAD", values("create", quota=2))
    assert (refused.value.issues[0].field, refused.value.issues[0].message) == ("quota", "must be at least 3")
    grant, created = await grants.put_grant(session, reseller, w.orgs["C2"], "CAD", values("create", quota=3))
    assert created
    assert await quota.remaining_quota(session, grant.id) == 0
