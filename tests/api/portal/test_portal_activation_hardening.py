"""The activation pages against clumsy and hostile use: signed out, products without cloud containers, revoked and
expired licenses, moves used up, oversized uploads, edited links, and a holder from a sub-organization."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.models import Activation
from tessera.cloud.models import CloudContainer
from tessera.models import License, Product, Ticket, User, utcnow
from tessera.settings import Settings
from tests.api.people import client_for, give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
MEMBER = "customer.member@example.com"


async def allow_cloud(sessions: Sessions, world: RightsWorld, *, kinds: list[str] | None = None) -> None:
    async with sessions() as session:
        await session.execute(
            update(Product)
            .where(Product.id == world.product_id)
            .values(container_kinds=kinds or ["software", "cloud"], max_activations=2)
        )
        await session.commit()


async def click(client: AsyncClient, action: str, page_url: str = "/tickets", **fields: str) -> Response:
    return await client.post(action, data={"csrf_token": csrf_of((await client.get(page_url)).text), **fields})


async def count_activations(sessions: Sessions) -> int:
    async with sessions() as session:
        return len((await session.scalars(select(Activation))).all())


async def test_signed_out_the_pages_send_to_sign_in_and_nothing_is_done(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    for path in ("/tickets", "/activations", "/cloud-containers", "/offline"):
        answer = await api.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/signin?next=")
    posted = await api.post(f"/tickets/{rights_world.tickets['own']}/activate", data={})
    assert posted.status_code in (303, 403)
    assert await count_activations(sessions) == 0


async def test_a_product_without_cloud_containers_offers_no_button_and_refuses_a_forged_post(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    page = await api.get("/tickets")
    assert '/activate" class="inline"' not in page.text
    assert "On a device only" in page.text
    assert 'autocomplete="off"' in page.text  # the code is not kept by the browser
    forged = await click(api, f"/tickets/{rights_world.tickets['own']}/activate")
    assert forged.status_code == 422
    assert "cloud" in forged.text
    assert await count_activations(sessions) == 0


async def test_revoked_and_expired_licenses_are_not_activated(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await allow_cloud(sessions, w)
    async with sessions() as session:
        await session.execute(update(Ticket).where(Ticket.id == w.tickets["own"]).values(status="revoked"))
        await session.execute(
            update(License).where(License.id == w.licenses["own_named"]).values(expires_at=utcnow() - timedelta(1))
        )
        await session.commit()
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    page = await api.get("/tickets")
    assert f'data-id="{w.tickets["own"]}"' not in page.text  # revoked tickets are nobody's to activate
    assert (await click(api, f"/tickets/{w.tickets['own']}/activate")).status_code == 404
    expired = await click(api, f"/tickets/{w.tickets['own_named']}/activate")
    assert expired.status_code == 409
    assert 'role="alert"' in expired.text
    assert await count_activations(sessions) == 0


async def test_returns_beyond_the_moves_allowed_are_refused_with_a_message(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await allow_cloud(sessions, w)
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    for move in range(4):
        done = await click(api, f"/tickets/{w.tickets['own_named']}/activate")
        assert done.status_code == 303, done.text
        activation_id = done.headers["location"].split("done=")[1]
        returned = await click(api, f"/activations/{activation_id}/return", "/activations")
        if move < 3:
            assert returned.status_code == 303, returned.text
    assert returned.status_code == 429
    assert "as often as allowed" in returned.text
    async with sessions() as session:
        still = await session.get_one(Activation, uuid.UUID(activation_id))
        assert still.status == "active"


async def test_a_holder_in_a_sub_organization_gets_a_container_there(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await allow_cloud(sessions, w)
    async with sessions() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == w.tickets["own"]).values(allocated_user_id=w.users["subgroup_member"])
        )
        email = (await session.get_one(User, w.users["subgroup_member"])).email
        await session.commit()
    await give_password(sessions, email)
    await sign_in_portal(api, email)
    assert (await click(api, f"/tickets/{w.tickets['own']}/activate")).status_code == 303
    async with sessions() as session:
        [container] = (await session.scalars(select(CloudContainer))).all()
    assert (container.user_id, container.organization_id) == (w.users["subgroup_member"], w.orgs["G1"])


@pytest.mark.parametrize(
    "path", ["/tickets?cursor=not-a-cursor", "/cloud-containers?cursor=%00", "/activations?done=not-an-id"]
)
async def test_edited_links_get_error_pages_not_failures(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, path: str
) -> None:
    del rights_world
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    answer = await api.get(path)
    assert answer.status_code in (404, 422), answer.text
    assert answer.headers["content-type"].startswith("text/html")


async def test_an_upload_beyond_what_a_form_may_carry_is_an_error_page(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    token = csrf_of((await api.get("/offline")).text)
    huge = await api.post(
        "/offline", data={"csrf_token": token}, files={"request": ("r.json", b"{" * (300 * 1024), "application/json")}
    )
    assert huge.status_code in (413, 422)
    assert huge.headers["content-type"].startswith("text/html")
    assert await count_activations(sessions) == 0


async def test_the_pages_speak_german(api: AsyncClient, rights_world: RightsWorld, sessions: Sessions) -> None:
    await allow_cloud(sessions, rights_world)
    async with sessions() as session:
        await session.execute(update(User).where(User.email == MEMBER).values(locale="de"))
        await session.commit()
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, MEMBER)
    tickets = (await api.get("/tickets")).text
    assert "Aktivieren" in tickets
    assert "Ticket-Code" in tickets
    assert "<h1>Meine Cloud-Container</h1>" in (await api.get("/cloud-containers")).text
    assert "Anfragedatei" in (await api.get("/offline")).text


CARD_ID = re.compile(r'<section class="card cloud-container" data-id="([0-9a-f-]{36})"')
ROW_ID = re.compile(r'<tr data-id="([0-9a-f-]{36})"')


async def test_the_lists_show_what_the_api_lists_to_each_person_and_names_are_escaped(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await allow_cloud(sessions, w)
    made = [
        ("customer_admin", {"organization_id": str(w.orgs["C1"]), "for_organization": True, "name": "<b>C1</b>"}),
        ("customer_member", {"name": "<script>alert(1)</script>"}),
        ("sibling_admin", {"organization_id": str(w.orgs["C2"]), "for_organization": True}),
    ]
    for who, body in made:
        created = await api.post("/api/v1/cloud-containers", json=body, headers=bearer(w.keys[who]))
        assert created.status_code == 201, created.text
    for who in ("customer_admin", "customer_member", "subgroup_member", "reseller_admin", "sibling_admin"):
        async with sessions() as session:
            email = (await session.get_one(User, w.users[who])).email
        await give_password(sessions, email)
        async with browser(api) as person:
            await sign_in_portal(person, email)
            containers_page = (await person.get("/cloud-containers")).text
            listed = (await api.get("/api/v1/cloud-containers", headers=bearer(w.keys[who]))).json()["items"]
            assert set(CARD_ID.findall(containers_page)) == {item["id"] for item in listed}, who
            assert "<script>alert(1)</script>" not in containers_page
            tickets_page = (await person.get("/tickets")).text
            mine = (await api.get("/api/v1/tickets?mine=true", headers=bearer(w.keys[who]))).json()["items"]
            assert set(ROW_ID.findall(tickets_page)) == {item["id"] for item in mine}, who


async def test_guessing_codes_on_the_page_meets_the_activation_limit(
    settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await allow_cloud(sessions, rights_world)
    await give_password(sessions, MEMBER)
    limited = settings.model_copy(update={"activation_failure_limit_client": "3/minute"})
    async with client_for(limited) as guesser:
        await sign_in_portal(guesser, MEMBER)
        for _ in range(3):
            wrong = await click(guesser, "/tickets/activate-code", code="0000-0000-0000-0000-0000-0000-0000")
            assert wrong.status_code == 404
        blocked = await click(guesser, "/tickets/activate-code", code=rights_world.codes["own"])
        assert blocked.status_code == 429
        assert 'id="code-error"' in blocked.text
    assert await count_activations(sessions) == 0
