"""Groups pages against clumsy and hostile input: forged forms, markup in names, revoked tickets, the vendor's view."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.portal.pages.organizations import member_labels
from tessera.models import Event, Grant, Membership, Organization, Ticket, User
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.api.portal.test_portal_groups import api_ids, ids_in, row, signed_in
from tests.api.portal.test_portal_groups_grants import cells
from tests.api.test_rights_concurrency import at_once, new_org
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
VENDOR_ADMIN = "admin@vendor.example"


async def test_every_form_of_the_group_page_is_refused_without_this_browsers_token(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        async with browser(api) as other:
            await signed_in(other, sessions, "reseller_admin")
            theirs = (await other.get("/organizations")).text
        stolen = theirs.split('name="csrf_token" value="')[1].split('"')[0]
        for action, data in (
            (f"/organizations/{c1}/invite", {"email": "mallory@example.com", "role": "admin"}),
            (f"/organizations/{c1}/sub-organizations", {"name": "Forged", "kind": "group"}),
            (
                f"/organizations/{c1}/tickets/{w.tickets['own']}",
                {"allocate_to": "organization", "visibility": "admins_only"},
            ),
            (f"/organizations/{c1}/members/{w.users['m_C1']}/role", {"role": "admin"}),
            (f"/organizations/{c1}/members/{w.users['m_C1']}/remove", {}),
        ):
            for token in (None, stolen):
                sent = {**data, **({"csrf_token": token} if token else {})}
                refused = await admin.post(action, data=sent)
                assert refused.status_code == 403, (action, token)
    async with sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(Organization).where(Organization.name == "Forged"))
            == 0
        )
        ticket = await session.get(Ticket, w.tickets["own"])
        assert ticket is not None
        assert ticket.visibility == "all_members"
        invited = await session.scalars(select(Event.recipients).where(Event.name == "invitation.txt.j2"))
        assert ["mallory@example.com"] not in list(invited.all())


async def test_markup_and_control_characters_in_names_are_shown_as_text_or_refused(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        made = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/sub-organizations",
            name='<script>alert("x")</script>', kind="group",
        )  # fmt: skip
        assert made.status_code == 303
        page = (await admin.get(made.headers["location"])).text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert "<script>alert" not in (await admin.get("/organizations")).text
        for name in ("Lab\x00", "Lab\u202e", "x" * 201):
            refused = await submit(
                admin, f"/organizations/{c1}", f"/organizations/{c1}/sub-organizations", name=name, kind="group"
            )
            assert refused.status_code == 422, repr(name)
            assert 'id="name-error"' in refused.text
        too_long = await submit(
            admin,
            f"/organizations/{c1}",
            f"/organizations/{c1}/invite",
            email="a" * 3000 + "@example.com",
            role="admin",
        )
        assert too_long.status_code == 422
        assert 'id="email-error"' in too_long.text


async def test_a_revoked_ticket_offers_no_allocation_and_refuses_one_in_its_row(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, ticket = w.orgs["C1"], w.tickets["own"]
    async with sessions() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket).values(status="revoked"))
        await session.commit()
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        page = (await admin.get(f"/organizations/{c1}")).text
        assert "Allocate to" not in row(page, ticket)
        assert "revoked" in row(page, ticket)
        refused = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/tickets/{ticket}",
            allocate_to="organization", visibility="admins_only",
        )  # fmt: skip
        assert refused.status_code == 409
        assert "a revoked ticket cannot be re-allocated" in row(refused.text, ticket)


async def test_the_vendor_administrator_sees_the_whole_tree_and_what_is_delegated_below_unlimited_grants(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await give_password(sessions, VENDOR_ADMIN)
    async with browser(api) as vendor:
        await sign_in_portal(vendor, VENDOR_ADMIN)
        tree = (await vendor.get("/organizations")).text
        assert ids_in(tree) == await api_ids(api, w.keys["vendor_admin"], "/organizations")
        vendor_page = (await vendor.get(f"/organizations/{w.orgs['V']}")).text
        vendor_grants = (await vendor.get(f"/organizations/{w.orgs['V']}/grants")).text
        assert "Save grant" in (await vendor.get(f"/organizations/{w.orgs['R2']}/grants")).text
    # R2's grant is unlimited; a quota its administrator hands down from it still shows as delegated.
    async with sessions() as session:
        session.add(Membership(user_id=w.users["foreign_admin"], organization_id=w.orgs["R2"], role="admin"))
        await session.commit()
    c4 = await new_org(api, w, "R2", "customer", "C4")
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "foreign_admin")
        saved = await submit(
            reseller, f"/organizations/{c4}/grants", product_group="CAD", permissions="create", quota="7"
        )
        assert saved.status_code == 303
        r2 = (await reseller.get(f"/organizations/{w.orgs['R2']}/grants")).text
        assert cells(r2, w.grants["R2"])[2:6] == ["unlimited", "0", "7", "unlimited"]
    assert "Save grant" not in vendor_grants  # the vendor holds everything already
    # The vendor's own node: every kind may be created below it but another vendor.
    for kind in ("reseller", "customer", "group"):
        assert f'<option value="{kind}"' in vendor_page
    assert '<option value="vendor"' not in vendor_page


async def test_a_german_speaking_admin_gets_the_groups_pages_in_german(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with sessions() as session:
        await session.execute(update(User).where(User.id == w.users["reseller_admin"]).values(locale="de"))
        await session.commit()
    async with browser(api) as admin:
        await signed_in(admin, sessions, "reseller_admin")
        tree = (await admin.get("/organizations")).text
        assert "Unterorganisationen: 2" in tree
        group = (await admin.get(f"/organizations/{w.orgs['C1']}")).text
        assert "Einladung senden" in group
        assert "Zuteilen an" in group
        grants = (await admin.get(f"/organizations/{w.orgs['C1']}/grants")).text
        assert "Recht speichern" in grants
        assert 'value="create"' in grants  # the values stay the API's


async def test_a_ticket_is_handled_only_on_its_own_organizations_page(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, below = w.orgs["C1"], w.tickets["subtree"]  # a ticket of C1's group, which C1's admin sees
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        token = csrf_of((await admin.get(f"/organizations/{c1}")).text)
        for action, data in (
            (f"/organizations/{c1}/tickets/{below}/code", {}),
            (f"/organizations/{c1}/tickets/{below}", {"allocate_to": "organization", "visibility": "admins_only"}),
        ):
            response = await admin.post(action, data={"csrf_token": token, **data})
            assert response.status_code == 404, action
            assert w.codes["subtree"] not in response.text
        # On its own page it is there, and C1's admin allocates it within the group.
        page = (await admin.get(f"/organizations/{w.orgs['G1']}")).text
        assert "Allocate to" in row(page, below)
        # Whoever is no member of the group's line is refused, whatever the form was made to say.
        outside = await admin.post(
            f"/organizations/{w.orgs['G1']}/tickets/{below}",
            data={"csrf_token": token, "allocate_to": str(w.users["customer_member"]), "visibility": "all_members"},
        )
        assert outside.status_code == 422
        assert "no such member" in row(outside.text, below)


async def test_an_admin_who_removes_themselves_is_led_back_to_the_tree(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        left = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/members/{w.users['customer_admin']}/remove"
        )
        assert left.status_code == 303
        assert left.headers["location"] == "/organizations"
        assert (await admin.get(f"/organizations/{c1}")).status_code == 404


def test_members_are_offered_by_name_and_told_apart_by_e_mail_only_when_needed() -> None:
    people = [
        User(id=uuid.uuid4(), email="dave@contoso.example", name="Dave"),
        User(id=uuid.uuid4(), email="erin@contoso.example", name="Erin"),
        User(id=uuid.uuid4(), email="erin@fabrikam.example", name="Erin"),
        User(id=uuid.uuid4(), email="nameless@contoso.example", name=""),
    ]
    labels = member_labels(people)
    assert [labels[user.id] for user in people] == [
        "Dave",
        "Erin (erin@contoso.example)",
        "Erin (erin@fabrikam.example)",
        "nameless@contoso.example",
    ]


async def test_an_admin_whose_grant_lacks_allocate_may_neither_allocate_nor_show_codes(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, ticket = w.orgs["C1"], w.tickets["own_admins_only"]
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == w.grants["C1"]).values(permissions=["create"]))
        await session.commit()
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        token = csrf_of((await admin.get(f"/organizations/{c1}")).text)
        shown = await admin.post(f"/organizations/{c1}/tickets/{ticket}/code", data={"csrf_token": token})
        assert shown.status_code == 403
        assert w.codes["own_admins_only"] not in shown.text
        moved = await admin.post(
            f"/organizations/{c1}/tickets/{ticket}",
            data={"csrf_token": token, "allocate_to": "organization", "visibility": "all_members"},
        )
        assert moved.status_code == 403
    async with sessions() as session:
        stored = await session.get(Ticket, ticket)
        assert stored is not None
        assert stored.visibility == "admins_only"


async def test_a_double_click_on_create_organization_creates_one(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        token = csrf_of((await admin.get(f"/organizations/{c1}")).text)
        fields = {"csrf_token": token, "name": "Design Lab", "kind": "group"}
        clicks = await at_once(*(admin.post(f"/organizations/{c1}/sub-organizations", data=fields) for _ in range(3)))
        assert {click.status_code for click in clicks} == {303}
        assert len({click.headers["location"] for click in clicks}) == 1
        again = await admin.post(f"/organizations/{c1}/sub-organizations", data=fields)
        assert again.headers["location"] == clicks[0].headers["location"]
        other = await admin.post(f"/organizations/{c1}/sub-organizations", data={**fields, "name": "Print Shop"})
        assert other.headers["location"] != clicks[0].headers["location"]
    async with sessions() as session:
        named = (await session.scalars(select(Organization.id).where(Organization.name == "Design Lab"))).all()
        assert len(named) == 1
    async with browser(api) as member:
        # A member sending the same form learns nothing of the new group: refused as always.
        await signed_in(member, sessions, "customer_member")
        token = csrf_of((await member.get(f"/organizations/{c1}")).text)
        refused = await member.post(f"/organizations/{c1}/sub-organizations", data={**fields, "csrf_token": token})
        assert refused.status_code == 403
        assert str(named[0]) not in refused.text
