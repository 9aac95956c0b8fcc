"""The API keys page: my keys as the API lists them, the secret shown once, revoking, and service keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import ApiKey
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"
MEMBER = "customer.member@example.com"
SECRET = re.compile(r'<code class="secret">([^<]+)</code>')
IN_A_MONTH = datetime.now(UTC).date() + timedelta(days=30)
ROW = re.compile(r'<tr data-id="([0-9a-f-]{36})"')


async def create(client: AsyncClient, page_url: str = "/api-keys", **fields: str | list[str]) -> Response:
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post("/api-keys", data={"csrf_token": csrf_of(page.text), **fields})


async def test_my_keys_are_the_apis_and_a_new_secret_is_shown_once(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await give_password(sessions, ADMIN)
    await sign_in_portal(api, ADMIN)
    page = await api.get("/api-keys")
    assert page.status_code == 200
    assert "<h1>API keys</h1>" in page.text
    listed = await api.get("/api/v1/api-keys", headers=bearer(w.keys["customer_admin"]))
    assert set(ROW.findall(page.text)) == {key["id"] for key in listed.json()["items"]}
    assert "tsp_" not in page.text  # the portal session is no key of the list
    assert "expired" in page.text  # the world gives customer_admin an expired key

    made = await create(api, name="laptop", scopes=["tickets:read", "orders:read"], expires_on=IN_A_MONTH.isoformat())
    assert made.status_code == 303, made.text
    shown = await api.get(made.headers["location"])
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    match = SECRET.search(shown.text)
    assert match is not None, shown.text
    secret = match.group(1)
    assert secret.startswith("tsk_")
    me = await api.get("/api/v1/tickets", headers=bearer(secret))
    assert me.status_code == 200
    # Never again: the page that showed it now sends you to the list, which has no secret.
    again = await api.get(made.headers["location"])
    assert again.status_code == 303
    listing = await api.get("/api-keys")
    assert secret not in listing.text
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.name == "laptop"))
        assert key is not None
        assert sorted(key.scopes) == ["orders:read", "tickets:read"]
        assert key.expires_at is not None
        assert key.expires_at.date() in {IN_A_MONTH, IN_A_MONTH + timedelta(days=1)}
    assert f'data-id="{key.id}"' in listing.text

    forged = await api.post(f"/api-keys/{key.id}/revoke")
    assert forged.status_code == 403
    revoked = await submit(api, "/api-keys", f"/api-keys/{key.id}/revoke")
    assert revoked.status_code == 303
    assert (await api.get("/api/v1/tickets", headers=bearer(secret))).status_code == 401
    assert "revoked" in (await api.get("/api-keys")).text
    # Revoking twice is harmless.
    assert (await submit(api, "/api-keys", f"/api-keys/{key.id}/revoke")).status_code == 303


async def test_the_secret_cookie_is_useless_in_another_browser(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, ADMIN)
    made = await create(api, name="ci")
    sealed = api.cookies.get("tessera_new_key", path="/api-keys/created")
    assert sealed
    assert "tsk_" not in sealed
    async with browser(api) as other:
        await sign_in_portal(other, MEMBER)
        other.cookies.set("tessera_new_key", sealed, path="/api-keys/created")
        stolen = await other.get(made.headers["location"])
        assert stolen.status_code == 303
        assert "secret" not in stolen.text


async def test_bad_input_is_shown_next_to_the_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    await sign_in_portal(api, ADMIN)
    empty = await create(api, name="")
    assert empty.status_code == 422
    assert 'id="name-error"' in empty.text
    past = await create(api, name="old", expires_on="2001-01-01")
    assert past.status_code == 422
    assert 'id="expires_on-error">must be in the future' in past.text
    garbage = await create(api, name="x", expires_on="soon")
    assert 'id="expires_on-error"' in garbage.text
    unknown = await create(api, name="x", scopes=["everything:write"])
    assert unknown.status_code == 422
    assert 'id="scopes-error">unknown scope' in unknown.text
    long_name = await create(api, name="n" * 300)
    assert long_name.status_code == 422
    async with browser(api) as anonymous:
        assert (await anonymous.get("/api-keys")).status_code == 303
    refused = await api.post("/api-keys", data={"name": "no token"})
    assert refused.status_code == 403
    # Every refusal rolled back: none of the attempts left a key behind.
    async with sessions() as session:
        names = ["", "old", "x", "no token", "n" * 300]
        assert (await session.scalars(select(ApiKey.name).where(ApiKey.name.in_(names)))).all() == []


async def test_foreign_keys_are_not_found_and_admins_manage_service_keys(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await give_password(sessions, ADMIN)
    await give_password(sessions, MEMBER)
    await sign_in_portal(api, ADMIN)
    async with sessions() as session:
        theirs = await session.scalar(select(ApiKey).where(ApiKey.user_id == w.users["foreign_admin"]))
        assert theirs is not None
    foreign = await submit(api, "/api-keys", f"/api-keys/{theirs.id}/revoke")
    assert foreign.status_code == 404
    assert (await api.get(f"/api-keys?organization={w.orgs['C3']}")).status_code == 404
    assert (await api.get("/api-keys?organization=not-a-uuid")).status_code == 404
    async with sessions() as session:
        still = await session.get(ApiKey, theirs.id)
        assert still is not None
        assert still.revoked_at is None

    # The administrator of C1 manages C1's service-account keys (and those of G1 below it).
    c1 = f"/api-keys?organization={w.orgs['C1']}"
    page = await api.get(c1)
    assert page.status_code == 200
    listed = await api.get(
        "/api/v1/api-keys", params={"organization_id": str(w.orgs["C1"])}, headers=bearer(w.keys["customer_admin"])
    )
    assert set(ROW.findall(page.text)) == {key["id"] for key in listed.json()["items"]}
    made = await create(api, c1, name="portal erp", organization=str(w.orgs["C1"]))
    assert made.status_code == 303, made.text
    shown = await api.get(made.headers["location"])
    secret = SECRET.search(shown.text)
    assert secret is not None
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.name == "portal erp"))
        assert key is not None
        assert (key.user_id, key.organization_id) == (None, w.orgs["C1"])
    assert f'data-id="{key.id}"' in (await api.get(c1)).text
    assert (await api.get(f"/api-keys?organization={w.orgs['G1']}")).status_code == 200

    # A plain member of C1 neither lists nor revokes them, nor makes one.
    async with browser(api) as member:
        await sign_in_portal(member, MEMBER)
        assert (await member.get(c1)).status_code in {403, 404}
        assert (await submit(member, "/api-keys", f"/api-keys/{key.id}/revoke")).status_code == 404
        sneaky = await create(member, name="sneaky", organization=str(w.orgs["C1"]))
        assert sneaky.status_code in {403, 404, 422}
    revoked = await submit(api, c1, f"/api-keys/{key.id}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == c1
    assert (await api.get("/api/v1/tickets", headers=bearer(secret.group(1)))).status_code == 401
