"""Webhook pages: an endpoint added with its secret shown once, the API's URL rules next to the field, disable and
enable, rotation, deliveries with redelivery, and nobody else's endpoints."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import User, utcnow
from tessera.webhooks import deliveries
from tessera.webhooks.endpoints import signing_secrets
from tessera.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import TEST_SECRET, RightsWorld, bearer
from tests.webhook_world import add_event

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"
SECRET = re.compile(r'<code class="secret" data-endpoint="([0-9a-f-]{36})">(whsec_[^<]+)</code>')
ROW = re.compile(r'<tr data-id="([0-9a-f-]{36})">')


@pytest.fixture
async def people(sessions: Sessions, rights_world: RightsWorld) -> RightsWorld:
    for email in (ADMIN, "customer.member@example.com", "foreign.admin@example.com"):
        await give_password(sessions, email)
    return rights_world


async def _add(client: AsyncClient, world: RightsWorld, org: str = "C1", **fields: Any) -> Response:
    page = await client.get("/webhooks")
    data: dict[str, Any] = {
        "csrf_token": csrf_of(page.text),
        "organization_id": str(world.orgs[org]),
        "url": "https://hooks.example.com/tessera",
        "event_types": ["order.fulfilled", "subscription.renewed"],
        **fields,
    }
    posted = await client.post("/webhooks", data=data)
    if posted.status_code != 303:
        return posted
    # Added: the secret is on the page the answer leads to, shown once.
    assert posted.headers["location"] == "/webhooks/secret"
    return await client.get("/webhooks/secret")


async def _endpoint(sessions: Sessions, endpoint_id: str) -> WebhookEndpoint:
    async with sessions() as session:
        found = await session.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        assert found is not None
        return found


async def test_an_endpoint_is_added_with_its_secret_shown_once(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    await sign_in_portal(api, ADMIN)
    page = await api.get("/webhooks")
    assert "<h1>Webhooks</h1>" in page.text
    assert 'for="f-url">URL' in page.text
    assert 'maxlength="2048" placeholder="https://"' in page.text  # the input's attributes, not escaped text
    assert "Add endpoint" in page.text
    added = await _add(api, people, description="ERP")
    assert added.status_code == 200, added.text
    found = SECRET.search(added.text)
    assert found is not None
    endpoint_id, secret = found.groups()
    endpoint = await _endpoint(sessions, endpoint_id)
    assert signing_secrets(TEST_SECRET, endpoint, utcnow()) == [secret]
    assert endpoint.event_types == ["order.fulfilled", "subscription.renewed"]
    again = await api.get("/webhooks")
    assert secret not in again.text
    # A reload of the secret's page shows it no more.
    reloaded = await api.get("/webhooks/secret")
    assert reloaded.status_code == 303
    assert secret not in reloaded.text
    assert ROW.findall(again.text) == [endpoint_id]
    listed = await api.get("/api/v1/webhook-endpoints", headers=bearer(people.keys["customer_admin"]))
    assert [item["id"] for item in listed.json()["items"]] == [endpoint_id]
    shown = await api.get(f"/webhooks/{endpoint_id}")
    assert shown.status_code == 200
    assert "Nothing was delivered to this endpoint yet." in shown.text
    assert secret not in shown.text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "https://10.0.0.1/"}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://hooks.example.com/"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"event_types": []}, "event_types"),  # the API's schema refuses it in its own words
        ({"event_types": ["order.fulfilled", "order.shipped"]}, "event_types"),
        ({"organization_id": "C3"}, "organization_id"),
        ({"organization_id": "nonsense"}, "organization_id"),
    ],
)
async def test_what_the_api_refuses_is_shown_next_to_its_field(
    api: AsyncClient, people: RightsWorld, sessions: Sessions, fields: dict[str, object], field: str
) -> None:
    await sign_in_portal(api, ADMIN)
    body: dict[str, Any] = {
        "organization_id": str(people.orgs["C1"]),
        "url": "https://hooks.example.com/tessera",
        "event_types": ["order.fulfilled"],
        **fields,
    }
    if body["organization_id"] == "C3":
        body["organization_id"] = str(people.orgs["C3"])
    answer = await _add(api, people, **body)
    assert answer.status_code == 422, answer.text
    shown = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', answer.text)
    assert shown is not None, answer.text
    if body["organization_id"] != "nonsense" and body["event_types"]:
        from_api = await api.post("/api/v1/webhook-endpoints", json=body, headers=bearer(people.keys["customer_admin"]))
        assert from_api.status_code == 422
        assert from_api.json()["errors"][0]["message"] == shown.group(1).replace("&#39;", "'")
    async with sessions() as session:
        assert (await session.scalars(select(WebhookEndpoint))).all() == []


async def test_disable_enable_and_rotate(api: AsyncClient, people: RightsWorld, sessions: Sessions) -> None:
    await sign_in_portal(api, ADMIN)
    found = SECRET.search((await _add(api, people)).text)
    assert found is not None
    endpoint_id, first = found.groups()
    disabled = await submit(api, "/webhooks", f"/webhooks/{endpoint_id}/status", status="disabled")
    assert disabled.status_code == 303
    assert (await _endpoint(sessions, endpoint_id)).status == "disabled"
    assert "Enable" in (await api.get("/webhooks")).text
    enabled = await submit(api, "/webhooks", f"/webhooks/{endpoint_id}/status", status="enabled")
    assert enabled.status_code == 303
    assert (await _endpoint(sessions, endpoint_id)).status == "enabled"
    odd = await submit(api, "/webhooks", f"/webhooks/{endpoint_id}/status", status="deleted")
    assert odd.status_code == 422
    posted = await submit(api, "/webhooks", f"/webhooks/{endpoint_id}/secret")
    assert posted.status_code == 303
    rotated = await api.get(posted.headers["location"])
    assert rotated.status_code == 200
    new = SECRET.search(rotated.text)
    assert new is not None
    assert new.group(1) == endpoint_id
    assert new.group(2) != first
    endpoint = await _endpoint(sessions, endpoint_id)
    assert signing_secrets(TEST_SECRET, endpoint, utcnow()) == [new.group(2), first]  # the overlap
    assert "Previous secret signs until" in (await api.get(f"/webhooks/{endpoint_id}")).text


async def test_other_peoples_endpoints_are_not_found_and_forms_need_their_token(
    api: AsyncClient, people: RightsWorld
) -> None:
    await sign_in_portal(api, ADMIN)
    found = SECRET.search((await _add(api, people)).text)
    assert found is not None
    endpoint_id = found.group(1)
    forged = await api.post(f"/webhooks/{endpoint_id}/secret", data={})
    assert forged.status_code == 403
    assert (await api.post("/webhooks", data={"url": "https://hooks.example.com/"})).status_code == 403
    for stranger in ("foreign.admin@example.com", "customer.member@example.com"):
        async with browser(api) as other:
            await sign_in_portal(other, stranger)
            page = await other.get("/webhooks")
            assert ROW.findall(page.text) == []
            assert (await other.get(f"/webhooks/{endpoint_id}")).status_code == 404
            token = csrf_of(page.text)
            for action, data in (("secret", {}), ("status", {"status": "disabled"}), ("redeliver", {})):
                refused = await other.post(f"/webhooks/{endpoint_id}/{action}", data={"csrf_token": token, **data})
                assert refused.status_code in (404, 422), (stranger, action)
                assert refused.status_code == 404 or action == "redeliver"
    assert "Add endpoint" not in page.text  # a member registers nothing


async def test_deliveries_are_listed_and_redelivered(
    orders_api: AsyncClient, people: RightsWorld, sessions: Sessions, dev_env: WorkflowEnvironment
) -> None:
    await sign_in_portal(orders_api, ADMIN)
    found = SECRET.search((await _add(orders_api, people)).text)
    assert found is not None
    endpoint_id = uuid.UUID(found.group(1))
    event_id = await add_event(sessions, people.orgs["C1"])
    async with sessions() as session:
        [start] = await deliveries.prepare_dispatch(session, event_id)
        await session.commit()
    page = await orders_api.get(f"/webhooks/{endpoint_id}")
    assert ROW.findall(page.text) == [str(start.delivery_id)]
    assert "order.fulfilled" in page.text
    sent = await orders_api.post(
        f"/webhooks/{endpoint_id}/redeliver", data={"csrf_token": csrf_of(page.text), "event_id": str(event_id)}
    )
    assert sent.status_code == 303
    shown = await orders_api.get(sent.headers["location"])
    assert "Sent again" in shown.text
    assert "sent again, round 1" in shown.text
    async with sessions() as session:
        query = select(WebhookDelivery.round).where(WebhookDelivery.event_id == event_id)
        rounds = (await session.scalars(query)).all()
    assert sorted(rounds) == [0, 1]
    handle = dev_env.client.get_workflow_handle(f"delivery-{event_id}-{endpoint_id}-r1")
    assert (await handle.describe()).workflow_type == "WebhookDeliveryWorkflow"
    # Disabled, the endpoint takes no redelivery: the page says why.
    disabled = await submit(orders_api, "/webhooks", f"/webhooks/{endpoint_id}/status", status="disabled")
    assert disabled.status_code == 303
    refused = await orders_api.post(
        f"/webhooks/{endpoint_id}/redeliver", data={"csrf_token": csrf_of(page.text), "event_id": str(event_id)}
    )
    assert refused.status_code == 422
    assert "is disabled; enable it first" in refused.text
    unknown = await orders_api.post(
        f"/webhooks/{endpoint_id}/redeliver", data={"csrf_token": csrf_of(page.text), "event_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404


async def test_a_german_speaking_admin_gets_the_page_in_german(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    del people
    async with sessions() as session:
        await session.execute(update(User).where(User.email == ADMIN).values(locale="de"))
        await session.commit()
    await sign_in_portal(api, ADMIN)
    page = await api.get("/webhooks")
    assert "Endpunkt hinzufügen" in page.text
    assert "Noch keine Webhook-Endpunkte." in page.text


async def test_oversized_and_odd_input_is_refused_on_the_form(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    await sign_in_portal(api, ADMIN)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"url": "https://hooks.example.com/" + "a" * 3000}, "url", "at most 2048 characters"),
        ({"description": "d" * 501}, "description", "at most 500 characters"),
        ({"event_types": ["x" * 500]}, "event_types", "unknown event type"),
    ]
    for fields, field, message in cases:
        answer = await _add(api, people, **fields)
        assert answer.status_code == 422, fields
        shown = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', answer.text)
        assert shown is not None, answer.text
        assert message in shown.group(1)
    async with sessions() as session:
        assert (await session.scalars(select(WebhookEndpoint))).all() == []


async def test_the_cookie_carrying_a_new_secret_is_useless_in_another_session(
    api: AsyncClient, people: RightsWorld, sessions: Sessions
) -> None:
    await sign_in_portal(api, ADMIN)
    page = await api.get("/webhooks")
    posted = await api.post(
        "/webhooks",
        data={
            "csrf_token": csrf_of(page.text),
            "organization_id": str(people.orgs["C1"]),
            "url": "https://hooks.example.com/tessera",
            "event_types": ["order.fulfilled"],
        },
    )
    assert posted.status_code == 303
    carried = posted.cookies["tessera_new_webhook_secret"]
    async with browser(api) as laptop:
        await sign_in_portal(laptop, ADMIN)  # the same person, another session
        laptop.cookies.set("tessera_new_webhook_secret", carried, path="/webhooks/secret")
        elsewhere = await laptop.get("/webhooks/secret")
        assert elsewhere.status_code == 303
        assert "whsec_" not in elsewhere.text
    shown = await api.get("/webhooks/secret")
    assert SECRET.search(shown.text) is not None
    async with sessions() as session:
        assert len((await session.scalars(select(WebhookEndpoint))).all()) == 1
