"""Leaving an organization takes its tickets away: no more sight, code or allocation; admins get them back."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.licenses import fulfilment
from tessera.licenses.tickets import create_ticket
from tessera.models import Membership, Order, Ticket, TicketEvent
from tests.api.test_rights_concurrency import at_once, warm
from tests.conftest import TEST_SECRET, RightsWorld, add_license, bearer

V1 = "/api/v1"


async def test_a_removed_member_loses_the_tickets_and_the_admins_get_them_back(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    member = bearer(w.keys["customer_member"])
    admin = bearer(w.keys["customer_admin"])
    named, shared = w.tickets["own_named"], w.tickets["own"]
    listed = {item["id"] for item in (await api.get(f"{V1}/tickets", headers=member)).json()["items"]}
    assert {str(named), str(shared)} <= listed
    removed = await api.delete(f"{V1}/organizations/{w.orgs['C1']}/members/{w.users['customer_member']}", headers=admin)
    assert removed.status_code == 204, removed.text
    # No sight, no code, no lookup, nothing to activate.
    assert (await api.get(f"{V1}/tickets", headers=member)).json()["items"] == []
    assert (await api.get(f"{V1}/tickets", params={"mine": "true"}, headers=member)).json()["items"] == []
    for ticket in (named, shared):
        assert (await api.get(f"{V1}/tickets/{ticket}", headers=member)).status_code == 404
        assert (await api.post(f"{V1}/tickets/{ticket}/code", headers=member)).status_code == 404
    lookup = await api.post(f"{V1}/tickets/lookup", json={"code": w.codes["own_named"]}, headers=member)
    assert lookup.status_code == 404
    # Back with the organization, for its admins only, listed as unallocated, and recorded.
    back = (await api.get(f"{V1}/tickets/{named}", headers=admin)).json()
    assert back["allocated_user_id"] is None
    assert back["visibility"] == "admins_only"
    unallocated = (await api.get(f"{V1}/tickets", params={"unallocated": "true"}, headers=admin)).json()["items"]
    assert str(named) in {item["id"] for item in unallocated}
    assert all(item["allocated_user_id"] is None for item in unallocated)
    async with sessions() as session:
        events = (await session.scalars(select(TicketEvent))).all()
    assert [(e.ticket_id, e.action, e.from_user_id, e.actor_user_id) for e in events] == [
        (named, "returned", w.users["customer_member"], w.users["customer_admin"])
    ]
    # And the former member cannot be given a ticket of it again.
    refused = await api.patch(
        f"{V1}/tickets/{named}", json={"allocated_user_id": str(w.users["customer_member"])}, headers=admin
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "allocated_user_id"


async def test_tickets_below_stay_while_the_user_still_belongs_there(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    user = w.users["m_G1"]  # member of G1; made a member of C1 too, with a named ticket in each
    async with sessions() as session:
        session.add(Membership(user_id=user, organization_id=w.orgs["C1"], role="member"))
        tickets = {}
        for org in ("C1", "G1"):
            license = await add_license(session, w, w.orgs[org])
            ticket, _code = await create_ticket(session, TEST_SECRET, license, allocated_user_id=user)
            tickets[org] = ticket.id
        await session.commit()
    admin = bearer(w.keys["customer_admin"])
    assert (await api.delete(f"{V1}/organizations/{w.orgs['C1']}/members/{user}", headers=admin)).status_code == 204

    async def holder(org: str) -> object:
        async with sessions() as session:
            return await session.scalar(select(Ticket.allocated_user_id).where(Ticket.id == tickets[org]))

    assert await holder("C1") is None
    assert await holder("G1") == user  # still a member of G1
    mine = (await api.get(f"{V1}/tickets", params={"mine": "true"}, headers=bearer(w.keys["m_G1"]))).json()["items"]
    assert str(tickets["G1"]) in {item["id"] for item in mine}
    assert (await api.delete(f"{V1}/organizations/{w.orgs['G1']}/members/{user}", headers=admin)).status_code == 204
    assert await holder("G1") is None


async def test_a_ticket_above_held_through_a_group_goes_back_when_the_group_is_left(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    user = w.users["m_G1"]  # member of G1 only
    admin = bearer(w.keys["customer_admin"])
    ticket = w.tickets["own"]  # a ticket of C1, above G1: members of groups below may be given it by name
    given = await api.patch(f"{V1}/tickets/{ticket}", json={"allocated_user_id": str(user)}, headers=admin)
    assert given.status_code == 200, given.text
    assert (await api.delete(f"{V1}/organizations/{w.orgs['G1']}/members/{user}", headers=admin)).status_code == 204
    assert (await api.get(f"{V1}/tickets/{ticket}", headers=bearer(w.keys["m_G1"]))).status_code == 404
    back = (await api.get(f"{V1}/tickets/{ticket}", headers=admin)).json()
    assert (back["allocated_user_id"], back["visibility"]) == (None, "admins_only")


async def test_allocation_and_removal_at_once_never_leave_a_ticket_with_a_stranger(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    reseller = bearer(w.keys["reseller_admin"])
    await warm(api, w, "customer_admin", "reseller_admin")
    ticket = w.tickets["own"]
    user = w.users["m_C1"]
    for _round in range(6):
        allocate, remove = await at_once(
            api.patch(f"{V1}/tickets/{ticket}", json={"allocated_user_id": str(user)}, headers=admin),
            api.delete(f"{V1}/organizations/{w.orgs['C1']}/members/{user}", headers=reseller),
        )
        assert remove.status_code == 204, remove.text
        assert allocate.status_code in (200, 422), allocate.text
        async with sessions() as session:
            holder = await session.scalar(select(Ticket.allocated_user_id).where(Ticket.id == ticket))
            assert holder is None  # whichever came first, the ticket is back with the organization
            session.add(Membership(user_id=user, organization_id=w.orgs["C1"], role="member"))
            await session.commit()


async def test_an_order_for_someone_who_left_meanwhile_goes_to_the_organization(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    user = w.users["m_C1"]
    async with sessions() as session:
        order = Order(
            organization_id=w.orgs["C1"],
            product_id=w.product_id,
            quantity=2,
            allocation="user",
            allocate_to_user_id=user,
            visibility="all_members",
            status="approved",
        )
        session.add(order)
        await session.commit()
    # Accepted while a member; removed before the workflow created and allocated the tickets.
    admin = bearer(w.keys["customer_admin"])
    assert (await api.delete(f"{V1}/organizations/{w.orgs['C1']}/members/{user}", headers=admin)).status_code == 204
    async with sessions() as session:
        await fulfilment.create_order_license_chunk(session, TEST_SECRET, order.id, after_line=0)
        assert await fulfilment.allocate_order_tickets(session, order.id, "as_ordered") == 2
        # The order asked for all_members; with its holder gone, the tickets stay with the admins.
        assert await fulfilment.set_order_visibility(session, order.id, "as_ordered") == 2
        await session.commit()
    async with sessions() as session:
        tickets = await fulfilment.order_tickets(session, order.id)
        events = (await session.scalars(select(TicketEvent).where(TicketEvent.from_user_id == user))).all()
    assert [(t.allocated_user_id, t.visibility) for t in tickets] == [(None, "admins_only")] * 2
    assert {e.ticket_id for e in events} == {t.id for t in tickets}
    mine = (await api.get(f"{V1}/tickets", headers=bearer(w.keys["m_C1"]))).json()["items"]
    assert mine == []


async def test_a_role_change_and_a_removal_at_once_never_fail_or_resurrect_the_member(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    reseller = bearer(w.keys["reseller_admin"])
    await warm(api, w, "customer_admin", "reseller_admin")
    user = w.users["m_C1"]
    url = f"{V1}/organizations/{w.orgs['C1']}/members/{user}"
    for round_no in range(8):
        role = ("admin", "member")[round_no % 2]
        change, remove = await at_once(
            api.put(url, json={"role": role}, headers=admin), api.delete(url, headers=reseller)
        )
        assert remove.status_code == 204, remove.text
        # Before the removal: a role change (200); after it: an invitation to join again (202), or, once the
        # removal has taken the user out of the admin's sight, not found (404). Never a failure.
        assert change.status_code in (200, 202, 404), change.text
        async with sessions() as session:
            left = await session.get(Membership, (user, w.orgs["C1"]))
            assert left is None  # whichever came first, the removal stands
            session.add(Membership(user_id=user, organization_id=w.orgs["C1"], role="member"))
            await session.commit()
