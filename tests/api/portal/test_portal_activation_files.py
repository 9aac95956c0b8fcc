"""Offline request files uploaded through the portal, and returning activations from My activations: who may take
which back, and a second click that changes nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.models import Activation
from tessera.models import Product, Ticket
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
MEMBER = "customer.member@example.com"
ADMIN = "customer.admin@example.com"
DEVICE = {"kind": "software", "fingerprint": "device-0001"}


@pytest.fixture
async def people(sessions: Sessions, rights_world: RightsWorld) -> RightsWorld:
    async with sessions() as session:
        await session.execute(
            update(Product)
            .where(Product.id == rights_world.product_id)
            .values(container_kinds=["software", "cloud"], max_activations=2)
        )
        await session.commit()
    for email in (MEMBER, ADMIN):
        await give_password(sessions, email)
    return rights_world


def request_file(code: str, **changes: Any) -> dict[str, Any]:
    body = {
        "format": "tessera-offline-request/1",
        "code": code,
        "container": DEVICE,
        "nonce": secrets.token_urlsafe(24),
        "last_seq": 0,
    }
    return body | changes


async def upload(client: AsyncClient, content: bytes, name: str = "tessera-request.json") -> Response:
    token = csrf_of((await client.get("/offline")).text)
    return await client.post(
        "/offline", data={"csrf_token": token}, files={"request": (name, content, "application/json")}
    )


async def post_form(client: AsyncClient, page_url: str, action: str) -> Response:
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf_token": csrf_of(page.text)})


def field_error(html: str) -> str:
    match = re.search(r'<p class="field-error" id="request-error">([^<]*)</p>', html)
    assert match is not None, html
    return match.group(1)


async def test_an_uploaded_request_file_is_answered_with_its_update_file_and_the_same_again(
    api: AsyncClient, people: RightsWorld
) -> None:
    await sign_in_portal(api, MEMBER)
    page = await api.get("/offline")
    assert "<h1>Offline activation</h1>" in page.text
    assert 'for="f-request"' in page.text
    body = request_file(people.codes["own"])
    raw = json.dumps(body).encode()
    answer = await upload(api, raw)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == 'attachment; filename="tessera-update.json"'
    assert answer.headers["cache-control"] == "no-store"
    update_file = answer.json()
    assert update_file["format"] == "tessera-offline-update/1"
    assert update_file["secret"].startswith("tsa_")
    keys = KeySet.import_key_set((await api.get("/.well-known/jwks.json")).json())
    claims = jwt.decode(update_file["certificate"], keys, algorithms=["EdDSA"]).claims
    assert claims["nonce"] == body["nonce"]
    assert claims["aud"] == "software:device-0001"
    assert claims["sub"] == str(people.licenses["own"])
    # The lost update file is fetched again with the same request file: the very same answer.
    again = await upload(api, raw)
    assert again.status_code == 200
    assert again.content == answer.content
    # The same nonce for another request is refused, on the page.
    reused = await upload(api, json.dumps(body | {"last_seq": 1}).encode())
    assert reused.status_code == 409
    assert "nonce" in field_error(reused.text)


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (b"\xff\xfe not text", 422, "not UTF-8"),
        (b"{not json", 422, "not JSON"),
        (b"[1, 2]", 422, "not a JSON object"),
        (json.dumps({"format": "tessera-offline-request/1"}).encode(), 422, "container"),
        (b" " * 5000, 413, "4096"),
        (b"", 422, ""),
    ],
)
async def test_malformed_and_oversized_files_are_answered_next_to_the_field(
    api: AsyncClient, people: RightsWorld, content: bytes, status: int, says: str
) -> None:
    del people
    await sign_in_portal(api, MEMBER)
    answer = await upload(api, content)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert says in field_error(answer.text)


async def test_a_form_without_a_file_and_an_unknown_code_are_answered_on_the_page(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    await sign_in_portal(api, MEMBER)
    token = csrf_of((await api.get("/offline")).text)
    missing = await api.post("/offline", data={"csrf_token": token})
    assert missing.status_code == 422
    assert field_error(missing.text) == "choose a file"
    unknown = await upload(api, json.dumps(request_file("0000-0000-0000-0000-0000-0000-0000")).encode())
    assert unknown.status_code == 404
    assert "no ticket" in field_error(unknown.text)
    async with sessions() as session:
        assert (await session.scalars(select(Activation))).all() == []
    del people


async def test_return_from_my_cloud_container_frees_the_ticket_and_a_second_click_changes_nothing(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    w = people
    await sign_in_portal(api, MEMBER)
    activated = await post_form(api, "/tickets", f"/tickets/{w.tickets['own_named']}/activate")
    activation_id = activated.headers["location"].split("done=")[1]
    listed = await api.get("/activations")
    assert f'action="/activations/{activation_id}/return"' in listed.text
    token = csrf_of(listed.text)
    first = await api.post(f"/activations/{activation_id}/return", data={"csrf_token": token})
    second = await api.post(f"/activations/{activation_id}/return", data={"csrf_token": token})
    assert (first.status_code, second.status_code) == (303, 303)
    async with sessions() as session:
        activation = await session.get_one(Activation, uuid.UUID(activation_id))
        assert activation.status == "returned"
        assert activation.returned_by_user_id == w.users["customer_member"]
        ticket = await session.get_one(Ticket, w.tickets["own_named"])
        assert ticket.status == "returned"
        returned = (await session.scalars(select(Activation).where(Activation.status == "returned"))).all()
        assert len(returned) == 1  # one move counted, not two
    after = await api.get(first.headers["location"])
    assert "Returned." in after.text
    assert f'action="/activations/{activation_id}/return"' not in after.text
    # The ticket activates again, into the same container.
    again = await post_form(api, "/tickets", f"/tickets/{w.tickets['own_named']}/activate")
    assert again.status_code == 303


async def test_a_device_activation_goes_back_through_an_administrator_not_the_holders_browser(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    w = people
    device = await api.post("/api/v1/activations", json={"code": w.codes["own_named"], "container": DEVICE})
    assert device.status_code == 201
    activation_id = device.json()["activation_id"]
    await sign_in_portal(api, MEMBER)
    listed = await api.get("/activations")
    assert f'data-id="{activation_id}"' in listed.text
    assert "software:device-0001" in listed.text
    assert f'action="/activations/{activation_id}/return"' not in listed.text
    refused = await api.post(f"/activations/{activation_id}/return", data={"csrf_token": csrf_of(listed.text)})
    assert refused.status_code in (403, 404)
    async with browser(api) as admin:
        await sign_in_portal(admin, ADMIN)
        done = await admin.post(
            f"/activations/{activation_id}/return", data={"csrf_token": csrf_of((await admin.get("/tickets")).text)}
        )
        assert done.status_code == 303, done.text
    async with sessions() as session:
        activation = await session.get_one(Activation, uuid.UUID(activation_id))
        assert activation.status == "returned"
        assert activation.returned_by_user_id == w.users["customer_admin"]
