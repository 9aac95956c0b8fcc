"""The activation pages: activating my tickets into my cloud container (by button or typed code), the credential
file, returning, and what other people's ids get (404); on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from httpx import AsyncClient, Response
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.models import Activation
from tessera.cloud.models import CloudContainer
from tessera.models import Product, Ticket
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
MEMBER = "customer.member@example.com"
ADMIN = "customer.admin@example.com"
SIBLING = "sibling.admin@example.com"
DATA_ID = re.compile(r'<tr data-id="([0-9a-f-]{36})"')


@pytest.fixture
async def cloud_product(sessions: Sessions, rights_world: RightsWorld) -> None:
    """The world's product may live in software and cloud containers, two per license."""
    async with sessions() as session:
        await session.execute(
            update(Product)
            .where(Product.id == rights_world.product_id)
            .values(container_kinds=["software", "cloud"], max_activations=2)
        )
        await session.commit()
    for email in (MEMBER, ADMIN):
        await give_password(sessions, email)


async def post_form(client: AsyncClient, page_url: str, action: str, **fields: str) -> Response:
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf_token": csrf_of(page.text), **fields})


async def activations_of(sessions: Sessions, ticket_id: uuid.UUID) -> list[Activation]:
    async with sessions() as session:
        return list((await session.scalars(select(Activation).where(Activation.ticket_id == ticket_id))).all())


async def own_containers(sessions: Sessions, user_id: uuid.UUID) -> list[CloudContainer]:
    async with sessions() as session:
        return list((await session.scalars(select(CloudContainer).where(CloudContainer.user_id == user_id))).all())


@pytest.mark.usefixtures("cloud_product")
async def test_my_tickets_lists_what_the_api_lists_and_activate_puts_the_license_in_my_container(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await sign_in_portal(api, MEMBER)
    page = await api.get("/tickets")
    assert page.status_code == 200
    assert "<h1>My tickets</h1>" in page.text
    listed = (await api.get("/api/v1/tickets?mine=true", headers=bearer(w.keys["customer_member"]))).json()
    assert set(DATA_ID.findall(page.text)) == {item["id"] for item in listed["items"]}
    assert w.codes["own"] not in page.text  # codes never reach the page

    done = await post_form(api, "/tickets", f"/tickets/{w.tickets['own']}/activate")
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/activations?done=")
    [activation] = await activations_of(sessions, w.tickets["own"])
    [container] = await own_containers(sessions, w.users["customer_member"])
    assert activation.container_id == f"cloud:{container.id}"
    assert container.organization_id == w.orgs["C1"]
    mine = await api.get(done.headers["location"])
    assert f'data-id="{activation.id}"' in mine.text
    assert "Activated." in mine.text
    tickets_page = (await api.get("/tickets")).text
    assert f'action="/tickets/{w.tickets["own"]}/activate"' not in tickets_page  # it is in my container already
    assert f'action="/tickets/{w.tickets["own_named"]}/activate"' in tickets_page

    # The credential file reaches the container; its certificates verify against the published keys alone.
    download = await post_form(api, "/cloud-containers", f"/cloud-containers/{container.id}/credentials")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["cache-control"] == "no-store"
    file = download.json()
    assert file["cloud_container_id"] == str(container.id)
    access = await api.post(
        f"/api/v1/cloud-containers/{container.id}/access",
        json={"credential": file["credential"], "device_id": "laptop-1"},
    )
    assert access.status_code == 200, access.text
    keys = KeySet.import_key_set((await api.get("/.well-known/jwks.json")).json())
    [issued] = access.json()["certificates"]
    claims = jwt.decode(issued["certificate"], keys, algorithms=["EdDSA"]).claims
    assert claims["aud"] == f"cloud:{container.id}"
    assert claims["sub"] == str(w.licenses["own"])
    assert claims["license"]["activation_id"] == str(activation.id)

    # A second download issues a new credential: the file downloaded before stops working.
    again = await post_form(api, "/cloud-containers", f"/cloud-containers/{container.id}/credentials")
    assert again.json()["credential"] != file["credential"]
    stale = await api.post(
        f"/api/v1/cloud-containers/{container.id}/access",
        json={"credential": file["credential"], "device_id": "laptop-1"},
    )
    assert stale.status_code == 401
    containers_page = await api.get("/cloud-containers")
    assert f'data-id="{container.id}"' in containers_page.text
    assert "1 of 3" in containers_page.text  # the laptop is seated


@pytest.mark.usefixtures("cloud_product")
async def test_activations_beyond_the_products_maximum_are_refused_with_a_message(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with sessions() as session:
        await session.execute(update(Product).where(Product.id == w.product_id).values(max_activations=1))
        await session.commit()
    await sign_in_portal(api, MEMBER)
    assert (await post_form(api, "/tickets", f"/tickets/{w.tickets['own']}/activate")).status_code == 303
    async with browser(api) as admin:
        await sign_in_portal(admin, ADMIN)
        refused = await post_form(admin, "/tickets", f"/tickets/{w.tickets['own']}/activate")
        assert refused.status_code == 409
        assert "as many as its product allows" in refused.text
        assert 'role="alert"' in refused.text
    assert len(await activations_of(sessions, w.tickets["own"])) == 1


@pytest.mark.usefixtures("cloud_product")
async def test_a_typed_code_activates_and_a_wrong_one_is_answered_next_to_the_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await sign_in_portal(api, MEMBER)
    wrong = await post_form(api, "/tickets", "/tickets/activate-code", code="0000-0000-0000-0000-0000-0000-0000")
    assert wrong.status_code in (404, 422)
    assert 'class="field-error"' in wrong.text
    malformed = await post_form(api, "/tickets", "/tickets/activate-code", code="not a code")
    assert malformed.status_code == 422
    assert 'id="code-error"' in malformed.text
    # A ticket handed over on paper: the code is the credential, wherever the ticket is allocated.
    done = await post_form(api, "/tickets", "/tickets/activate-code", code=w.codes["foreign"])
    assert done.status_code == 303, done.text
    [activation] = await activations_of(sessions, w.tickets["foreign"])
    [container] = await own_containers(sessions, w.users["customer_member"])
    assert activation.container_id == f"cloud:{container.id}"


@pytest.mark.usefixtures("cloud_product")
async def test_other_peoples_tickets_containers_and_activations_are_404(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with browser(api) as admin:
        await sign_in_portal(admin, ADMIN)
        hidden = await post_form(admin, "/tickets", f"/tickets/{w.tickets['own_admins_only']}/activate")
        assert hidden.status_code == 404  # admins see it, but it is for no one to activate themselves
        await post_form(admin, "/tickets", f"/tickets/{w.tickets['own']}/activate")
    [theirs] = await own_containers(sessions, w.users["customer_admin"])
    [their_activation] = await activations_of(sessions, w.tickets["own"])
    await sign_in_portal(api, MEMBER)
    for ticket in ("foreign", "sibling", "own_admins_only"):
        refused = await post_form(api, "/tickets", f"/tickets/{w.tickets[ticket]}/activate")
        assert refused.status_code == 404, ticket
    assert (await post_form(api, "/tickets", f"/tickets/{uuid.uuid4()}/activate")).status_code == 404
    assert (await post_form(api, "/tickets", "/tickets/not-an-id/activate")).status_code == 404
    credentials = await post_form(api, "/cloud-containers", f"/cloud-containers/{theirs.id}/credentials")
    assert credentials.status_code == 404
    # The ticket is the member's too (all members of C1), so the activation is listed, but only its container's
    # owner or an administrator takes it back.
    shared = await post_form(api, "/activations", f"/activations/{their_activation.id}/return")
    assert shared.status_code == 403
    assert 'role="alert"' in shared.text
    async with browser(api) as sibling:
        await give_password(sessions, SIBLING)
        await sign_in_portal(sibling, SIBLING)
        await post_form(sibling, "/tickets", f"/tickets/{w.tickets['sibling']}/activate")
    [foreign_activation] = await activations_of(sessions, w.tickets["sibling"])
    returned = await post_form(api, "/activations", f"/activations/{foreign_activation.id}/return")
    assert returned.status_code == 404
    assert (await post_form(api, "/activations", f"/activations/{uuid.uuid4()}/return")).status_code == 404
    assert f'data-id="{theirs.id}"' not in (await api.get("/cloud-containers")).text
    assert len(await activations_of(sessions, w.tickets["own_admins_only"])) == 0
    async with sessions() as session:
        still = await session.get_one(Activation, foreign_activation.id)
        assert still.status == "active"


@pytest.mark.usefixtures("cloud_product")
async def test_every_activation_form_needs_this_browsers_csrf_token(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await sign_in_portal(api, MEMBER)
    for action in (f"/tickets/{w.tickets['own']}/activate", "/tickets/activate-code"):
        refused = await api.post(action, data={"code": w.codes["own"]})
        assert refused.status_code == 403, action
    assert await activations_of(sessions, w.tickets["own"]) == []
    await post_form(api, "/tickets", f"/tickets/{w.tickets['own']}/activate")
    [activation] = await activations_of(sessions, w.tickets["own"])
    [container] = await own_containers(sessions, w.users["customer_member"])
    assert (await api.post(f"/cloud-containers/{container.id}/credentials", data={})).status_code == 403
    assert (await api.post(f"/activations/{activation.id}/return", data={"csrf_token": "A" * 43})).status_code == 403
    assert (await api.post("/offline", files={"request": ("r.json", b"{}")})).status_code == 403
    [still] = await activations_of(sessions, w.tickets["own"])
    assert still.status == "active"


@pytest.mark.usefixtures("cloud_product")
async def test_a_double_click_on_activate_makes_one_activation_in_one_container(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await sign_in_portal(api, MEMBER)
    token = csrf_of((await api.get("/tickets")).text)
    clicks = await asyncio.gather(
        *(api.post(f"/tickets/{w.tickets['own']}/activate", data={"csrf_token": token}) for _ in range(2)),
        api.post(f"/tickets/{w.tickets['own_named']}/activate", data={"csrf_token": token}),
    )
    assert [click.status_code for click in clicks] == [303, 303, 303], [c.text for c in clicks]
    assert len(await activations_of(sessions, w.tickets["own"])) == 1
    assert len(await own_containers(sessions, w.users["customer_member"])) == 1  # first use, three times at once
    async with sessions() as session:
        ticket = await session.get_one(Ticket, w.tickets["own"])
        assert ticket.status == "activated"
