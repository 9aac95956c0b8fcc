"""Groups pages: the organization tree and the group page, as admins, members and people from elsewhere see them."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import ApiKey, Event, Membership, Organization, Ticket, utcnow
from tests.api.people import give_password, invitation_token
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
DATA_ID = re.compile(r'data-id="([0-9a-f-]{36})"')


def email_of(name: str) -> str:
    return f"{name.replace('_', '.')}@example.com"


async def signed_in(client: AsyncClient, sessions: Sessions, name: str) -> None:
    await give_password(sessions, email_of(name))
    await sign_in_portal(client, email_of(name))


def ids_in(html: str) -> set[uuid.UUID]:
    return {uuid.UUID(value) for value in DATA_ID.findall(html)}


def row(html: str, object_id: uuid.UUID) -> str:
    """The table row (or list item) of one object."""
    match = re.search(rf'<(tr|li) data-id="{object_id}".*?</\1>', html, re.S)
    assert match is not None, f"no row for {object_id}"
    return match.group(0)


async def api_ids(api: AsyncClient, key: str, path: str) -> set[uuid.UUID]:
    response = await api.get(f"/api/v1{path}", params={"limit": 200}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return {uuid.UUID(item["id"]) for item in response.json()["items"]}


async def test_the_tree_shows_what_the_api_lists_for_each_person(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    for name in ("reseller_admin", "customer_member", "subgroup_member", "foreign_admin"):
        async with browser(api) as person:
            await signed_in(person, sessions, name)
            tree = await person.get("/organizations")
            assert tree.status_code == 200
            assert "<h1>Groups</h1>" in tree.text
            assert ids_in(tree.text) == await api_ids(api, w.keys[name], "/organizations"), name
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        html = (await reseller.get("/organizations")).text
        # Nested: Contoso's group sits inside the reseller's branch, each node links to its page.
        branch = html[html.index(f'data-id="{w.orgs["R1"]}"') :]
        assert f'href="/organizations/{w.orgs["G1"]}"' in branch
        assert "Tickets: 3 · Members: 3 · Sub-organizations: 1" in " ".join(row(html, w.orgs["C1"]).split())


async def test_the_group_page_shows_admins_members_and_tickets_and_members_only_their_tickets(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        page = await admin.get(f"/organizations/{c1}")
        assert page.status_code == 200
        assert "<h1>C1</h1>" in page.text
        assert page.headers["cache-control"] == "no-store"
        for who in ("customer_admin", "customer_member", "m_C1"):
            assert email_of(who) in row(page.text, w.users[who])
        visible = {t for t in await api_ids(api, w.keys["customer_admin"], "/tickets") if t in _tickets_of(w, "C1")}
        shown = ids_in(page.text) & set(w.tickets.values())
        assert shown == visible == {w.tickets["own"], w.tickets["own_admins_only"], w.tickets["own_named"]}
        assert f'data-id="{w.orgs["G1"]}"' in page.text  # the sub-organization
        for label in ("Allocate to", "Visibility", "E-mail address", "Role", "Name", "Kind", "Country"):
            assert f">{label}" in page.text, label
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        page = await member.get(f"/organizations/{c1}")
        assert page.status_code == 200
        shown = ids_in(page.text) & set(w.tickets.values())
        assert shown == {w.tickets["own"], w.tickets["own_named"]}
        # Members see neither who else belongs (personal data) nor the admin forms.
        assert email_of("m_C1") not in page.text
        assert "Send invitation" not in page.text
        assert "Allocate to" not in page.text


def _tickets_of(world: RightsWorld, org: str) -> set[uuid.UUID]:
    from tests.conftest import WORLD_TICKETS

    return {world.tickets[name] for name, org_name, _holder, _visibility in WORLD_TICKETS if org_name == org}


async def test_foreign_and_malformed_ids_are_a_404_page(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        for path in (
            f"/organizations/{w.orgs['C3']}",
            f"/organizations/{w.orgs['C2']}",
            f"/organizations/{w.orgs['R1']}",  # above: not within reach of a customer's admin
            f"/organizations/{uuid.uuid4()}",
            "/organizations/not-a-uuid",
            f"/organizations/{w.orgs['C3']}/grants",
        ):
            response = await admin.get(path)
            assert response.status_code == 404, path
            assert "Not found" in response.text
        token = csrf_of((await admin.get("/organizations")).text)
        foreign = w.orgs["C3"]
        for action, data in (
            (f"/organizations/{foreign}/invite", {"email": "x@example.com", "role": "member"}),
            (f"/organizations/{foreign}/sub-organizations", {"name": "X", "kind": "group"}),
            (f"/organizations/{foreign}/tickets/{w.tickets['foreign']}", {"allocate_to": "organization"}),
            (f"/organizations/{foreign}/tickets/{w.tickets['foreign']}/code", {}),
            (f"/organizations/{w.orgs['C1']}/tickets/{w.tickets['foreign']}/code", {}),
            (f"/organizations/{foreign}/members/{w.users['foreign_admin']}/remove", {}),
        ):
            response = await admin.post(action, data={"csrf_token": token, **data})
            assert response.status_code == 404, action
            assert w.codes["foreign"] not in response.text


async def test_a_not_found_page_renders_while_the_request_records_the_sessions_use(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        # A session last used minutes ago: this request writes its use, then the error page is rendered.
        async with sessions() as session:
            await session.execute(update(ApiKey).values(last_used_at=utcnow() - timedelta(minutes=5)))
            await session.commit()
        response = await admin.get(f"/organizations/{w.orgs['C3']}")
        assert response.status_code == 404
        assert "Sign out" in response.text  # still signed in on the error page


async def test_admins_reallocate_and_change_visibility_and_members_may_not(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, ticket = w.orgs["C1"], w.tickets["own"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        saved = await submit(
            admin,
            f"/organizations/{c1}",
            f"/organizations/{c1}/tickets/{ticket}",
            allocate_to=str(w.users["m_C1"]),
            visibility="admins_only",
        )
        assert saved.status_code == 303
        assert saved.headers["location"].startswith(f"/organizations/{c1}?done=ticket")
        async with sessions() as session:
            stored = await session.get(Ticket, ticket)
            assert stored is not None
            assert (stored.allocated_user_id, stored.visibility) == (w.users["m_C1"], "admins_only")
        page = (await admin.get(saved.headers["location"])).text
        assert "The ticket is saved." in page
        assert "m_C1" in row(page, ticket)
        # Each member is offered by name (e-mail only to tell people of the same name apart).
        assert f'<option value="{w.users["customer_member"]}">customer_member</option>' in row(page, ticket)
        # Back to the organization, for all its members.
        back = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/tickets/{ticket}",
            allocate_to="organization", visibility="all_members",
        )  # fmt: skip
        assert back.status_code == 303
        # Someone who is no member of the license's organization: the service's message, next to the field.
        refused = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/tickets/{ticket}",
            allocate_to=str(w.users["foreign_admin"]), visibility="all_members",
        )  # fmt: skip
        assert refused.status_code == 422
        assert "no such member of the license" in row(refused.text, ticket)
        assert 'aria-invalid="true"' in row(refused.text, ticket)
        for allocate_to, visibility in (("nobody", "all_members"), ("organization", "everyone")):
            bad = await submit(
                admin, f"/organizations/{c1}", f"/organizations/{c1}/tickets/{ticket}",
                allocate_to=allocate_to, visibility=visibility,
            )  # fmt: skip
            assert bad.status_code == 422, (allocate_to, visibility)
    async with sessions() as session:
        stored = await session.get(Ticket, ticket)
        assert stored is not None
        assert (stored.allocated_user_id, stored.visibility) == (None, "all_members")
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        token = csrf_of((await member.get(f"/organizations/{c1}")).text)
        forbidden = await member.post(
            f"/organizations/{c1}/tickets/{ticket}",
            data={"csrf_token": token, "allocate_to": str(w.users["customer_member"]), "visibility": "all_members"},
        )
        assert forbidden.status_code == 403
        assert "Not allowed" in forbidden.text
        # A ticket the member does not see is not there at all.
        hidden = await member.post(
            f"/organizations/{c1}/tickets/{w.tickets['own_admins_only']}/code", data={"csrf_token": token}
        )
        assert hidden.status_code == 404
        assert w.codes["own_admins_only"] not in hidden.text


async def test_show_code_reveals_it_in_the_body_only_to_those_entitled(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, ticket = w.orgs["C1"], w.tickets["own_admins_only"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        page = await admin.get(f"/organizations/{c1}")
        assert w.codes["own_admins_only"] not in page.text
        shown = await admin.post(f"/organizations/{c1}/tickets/{ticket}/code", data={"csrf_token": csrf_of(page.text)})
        assert shown.status_code == 200
        assert shown.headers["cache-control"] == "no-store"
        assert f'<code class="secret">{w.codes["own_admins_only"]}</code>' in row(shown.text, ticket)
        assert shown.text.count('class="secret"') == 1
        assert w.codes["own"] not in shown.text
        # Without the form's token, nothing is shown.
        refused = await admin.post(f"/organizations/{c1}/tickets/{ticket}/code", data={})
        assert refused.status_code == 403
        assert w.codes["own_admins_only"] not in refused.text
    async with browser(api) as member:
        # A member may show the code of a ticket they could activate themselves, as through the API.
        await signed_in(member, sessions, "customer_member")
        page = await member.get(f"/organizations/{c1}")
        own = await member.post(
            f"/organizations/{c1}/tickets/{w.tickets['own_named']}/code", data={"csrf_token": csrf_of(page.text)}
        )
        assert own.status_code == 200
        assert w.codes["own_named"] in own.text


async def test_an_invitation_is_sent_and_bad_input_is_answered_next_to_the_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        sent = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/invite", email="Erin@Example.com", role="admin"
        )
        assert sent.status_code == 303
        assert "The invitation is sent." in (await admin.get(sent.headers["location"])).text
        assert await invitation_token(sessions, "erin@example.com")
        bad = await submit(admin, f"/organizations/{c1}", f"/organizations/{c1}/invite", email="erin", role="member")
        assert bad.status_code == 422
        assert 'id="email-error"' in bad.text
        assert 'value="erin"' in bad.text  # what was typed stays in the field
        bad_role = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/invite", email="f@example.com", role="owner"
        )
        assert bad_role.status_code == 422
        assert 'id="role-error"' in bad_role.text
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        token = csrf_of((await member.get(f"/organizations/{c1}")).text)
        refused = await member.post(
            f"/organizations/{c1}/invite", data={"csrf_token": token, "email": "g@example.com", "role": "admin"}
        )
        assert refused.status_code == 403


async def test_a_sub_organization_is_created_below_with_the_kinds_allowed_there(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, r1 = w.orgs["C1"], w.orgs["R1"]
    async with sessions() as session:
        await session.execute(
            update(Organization).where(Organization.id == r1).values(timezone="Europe/Berlin", locale="de")
        )
        await session.commit()
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        page = (await reseller.get(f"/organizations/{r1}")).text
        assert '<option value="customer"' in page
        assert '<option value="reseller"' not in page
        created = await submit(
            reseller, f"/organizations/{r1}", f"/organizations/{r1}/sub-organizations",
            name="Tailspin", kind="customer", country="de",
        )  # fmt: skip
        assert created.status_code == 303
        async with sessions() as session:
            new = await session.scalar(select(Organization).where(Organization.name == "Tailspin"))
            assert new is not None
            assert (new.parent_id, new.kind, new.country) == (r1, "customer", "DE")
            assert (new.timezone, new.locale) == ("Europe/Berlin", "de")  # those of its parent
        assert created.headers["location"] == f"/organizations/{new.id}?done=created"
        assert "<h1>Tailspin</h1>" in (await reseller.get(created.headers["location"])).text
        wrong_kind = await submit(
            reseller, f"/organizations/{c1}", f"/organizations/{c1}/sub-organizations", name="X", kind="customer"
        )
        assert wrong_kind.status_code == 422
        assert 'id="kind-error"' in wrong_kind.text
        for fields, field in (
            ({"name": "", "kind": "group"}, "name"),
            ({"name": "Y", "kind": "group", "country": "Germany"}, "country"),
        ):
            bad = await submit(reseller, f"/organizations/{c1}", f"/organizations/{c1}/sub-organizations", **fields)
            assert bad.status_code == 422, fields
            assert f'id="{field}-error"' in bad.text, bad.text
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        token = csrf_of((await member.get(f"/organizations/{c1}")).text)
        refused = await member.post(
            f"/organizations/{c1}/sub-organizations", data={"csrf_token": token, "name": "Mine", "kind": "group"}
        )
        assert refused.status_code == 403


async def test_admins_change_roles_and_remove_members_whose_tickets_go_back(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as admin:
        await signed_in(admin, sessions, "customer_admin")
        promoted = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/members/{w.users['m_C1']}/role", role="admin"
        )
        assert promoted.status_code == 303
        async with sessions() as session:
            membership = await session.get(Membership, (w.users["m_C1"], c1))
            assert membership is not None
            assert membership.role == "admin"
        # The role button never invites someone who is no member here.
        outsider = w.users["subgroup_member"]
        stranger = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/members/{outsider}/role", role="admin"
        )
        assert stranger.status_code == 404
        async with sessions() as session:
            sent = (await session.scalars(select(Event.recipients).where(Event.name == "invitation.txt.j2"))).all()
            assert [email_of("subgroup_member")] not in list(sent)
        removed = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/members/{w.users['customer_member']}/remove"
        )
        assert removed.status_code == 303
        async with sessions() as session:
            assert await session.get(Membership, (w.users["customer_member"], c1)) is None
            ticket = await session.get(Ticket, w.tickets["own_named"])
            assert ticket is not None
            assert ticket.allocated_user_id is None
        again = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/members/{w.users['customer_member']}/remove"
        )
        assert again.status_code == 404


async def test_someone_invited_from_the_group_page_joins_and_gets_a_ticket_allocated_to_them(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, ticket = w.orgs["C1"], w.tickets["own_admins_only"]
    async with browser(api) as admin, browser(api) as erin:
        await signed_in(admin, sessions, "customer_admin")
        sent = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/invite", email="erin@example.com", role="member"
        )
        assert sent.status_code == 303
        link = f"/invitations/{await invitation_token(sessions, 'erin@example.com')}"
        joined = await submit(erin, link, email="erin@example.com", name="Erin", password="a long passphrase of erin")
        assert joined.status_code == 303
        page = (await admin.get(f"/organizations/{c1}")).text
        erin_id = next(user for user, text in _member_rows(page) if "erin@example.com" in text)
        allocated = await submit(
            admin, f"/organizations/{c1}", f"/organizations/{c1}/tickets/{ticket}",
            allocate_to=str(erin_id), visibility="admins_only",
        )  # fmt: skip
        assert allocated.status_code == 303
        assert "Erin" in row((await admin.get(f"/organizations/{c1}")).text, ticket)
        # Erin sees it on her organization's page, and may show its code (she can activate it).
        mine = await erin.get(f"/organizations/{c1}")
        assert mine.status_code == 200
        assert ids_in(mine.text) & set(w.tickets.values()) == {w.tickets["own"], ticket}
        shown = await erin.post(f"/organizations/{c1}/tickets/{ticket}/code", data={"csrf_token": csrf_of(mine.text)})
        assert w.codes["own_admins_only"] in shown.text


def _member_rows(html: str) -> list[tuple[uuid.UUID, str]]:
    return [
        (uuid.UUID(match.group(1)), match.group(2))
        for match in re.finditer(r'<tr data-id="([0-9a-f-]{36})">(.*?)</tr>', html, re.S)
    ]
