"""Users and memberships through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.people import join
from tests.conftest import RightsWorld, bearer

Count = Callable[[str], Awaitable[int]]


async def test_malformed_email_names_the_field_and_writes_nothing(
    api: AsyncClient, rights_world: RightsWorld, row_count: Count
) -> None:
    before = (await row_count("user_account"), await row_count("membership"))
    body = {"email": "not-an-address", "name": "X", "organization_id": str(rights_world.orgs["C1"])}
    response = await api.post("/api/v1/users", json=body, headers=bearer(rights_world.keys["customer_admin"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "email"
    assert (await row_count("user_account"), await row_count("membership")) == before


async def test_an_admin_invites_a_user_who_joins_on_redeeming(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    body = {"email": "New.Person@Example.com", "name": "New", "organization_id": str(w.orgs["G1"]), "role": "admin"}
    created = await api.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 202, created.text
    assert created.json()["email"] == "new.person@example.com"
    # Until the invitation is redeemed there is nobody to see.
    pending = (await api.get("/api/v1/users", params={"email": "new.person@example.com"}, headers=admin)).json()
    assert pending["items"] == []
    await join(api, sessions, "new.person@example.com")
    listed = (await api.get("/api/v1/users", params={"email": "NEW.person@example.com"}, headers=admin)).json()
    [user] = listed["items"]
    assert (await api.get(f"/api/v1/users/{user['id']}", headers=admin)).json()["name"] == "New"
    sibling = await api.get(f"/api/v1/users/{user['id']}", headers=bearer(w.keys["sibling_admin"]))
    assert sibling.status_code == 404
    # Outside the customer admin's subtree the user is invisible.
    other = await api.get(
        "/api/v1/users", params={"email": "new.person@example.com"}, headers=bearer(w.keys["sibling_admin"])
    )
    assert other.json()["items"] == []


async def test_me_describes_the_key_and_its_memberships(api: AsyncClient, rights_world: RightsWorld) -> None:
    me = (await api.get("/api/v1/users/me", headers=bearer(rights_world.keys["vendor_staff"]))).json()
    assert me["user"]["email"] == "vendor.staff@example.com"
    assert {(m["organization_id"], m["role"]) for m in me["memberships"]} == {
        (str(rights_world.orgs["S"]), "admin"),
        (str(rights_world.orgs["V"]), "member"),
    }
    assert me["scopes"] == ["*"]
    assert me["vendor_admin"] is False


async def test_membership_role_change_and_removal(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    admin = bearer(w.keys["reseller_admin"])
    path = f"/api/v1/organizations/{w.orgs['C1']}/members/{w.users['customer_member']}"
    promoted = await api.put(path, json={"role": "admin"}, headers=admin)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    bad = await api.put(path, json={"role": "owner"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "role"
    assert (await api.delete(path, headers=admin)).status_code == 204
    assert (await api.delete(path, headers=admin)).status_code == 404
