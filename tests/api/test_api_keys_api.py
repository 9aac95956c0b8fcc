"""API keys: shown once, scoped, never beyond their owner, revocable; service accounts of organizations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from tests.conftest import RightsWorld, bearer


async def test_a_key_is_shown_once_and_works_until_revoked(api: AsyncClient, rights_world: RightsWorld) -> None:
    owner = bearer(rights_world.keys["customer_admin"])
    created = await api.post("/api/v1/api-keys", json={"name": "laptop"}, headers=owner)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("tsk_")
    assert secret.startswith(created.json()["prefix"])
    me = (await api.get("/api/v1/users/me", headers=bearer(secret))).json()
    assert me["user"]["id"] == str(rights_world.users["customer_admin"])
    assert (await api.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=owner)).status_code == 204
    assert (await api.get("/api/v1/users/me", headers=bearer(secret))).status_code == 401


async def test_scopes_limit_a_key_and_cannot_be_widened(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    owner = bearer(w.keys["customer_admin"])
    created = await api.post("/api/v1/api-keys", json={"name": "ro", "scopes": ["tickets:read"]}, headers=owner)
    narrow = bearer(created.json()["secret"])
    assert (await api.get("/api/v1/tickets", headers=narrow)).status_code == 200
    assert (await api.get("/api/v1/organizations", headers=narrow)).status_code == 403
    patched = await api.patch(f"/api/v1/tickets/{w.tickets['own']}", json={"visibility": "all_members"}, headers=narrow)
    assert patched.status_code == 403
    assert (await api.post("/api/v1/api-keys", json={"name": "x"}, headers=narrow)).status_code == 403
    unknown = await api.post("/api/v1/api-keys", json={"name": "x", "scopes": ["tickets:read", "root"]}, headers=owner)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "scopes.1"


async def test_an_expiry_in_the_past_is_refused(api: AsyncClient, rights_world: RightsWorld) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await api.post(
        "/api/v1/api-keys",
        json={"name": "old", "expires_at": past},
        headers=bearer(rights_world.keys["customer_admin"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "expires_at"


async def test_a_service_key_acts_for_its_organization_only(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    created = await api.post(
        "/api/v1/api-keys",
        json={"name": "erp", "scopes": ["organizations:write", "tickets:read"], "organization_id": str(w.orgs["C1"])},
        headers=bearer(w.keys["reseller_admin"]),
    )
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] is None
    erp = bearer(created.json()["secret"])
    assert (
        await api.patch(f"/api/v1/organizations/{w.orgs['G1']}", json={"locale": "de"}, headers=erp)
    ).status_code == 200
    assert (await api.get(f"/api/v1/organizations/{w.orgs['R1']}", headers=erp)).status_code == 404
    assert (await api.get(f"/api/v1/tickets/{w.tickets['sibling']}", headers=erp)).status_code == 404
    # A customer member cannot issue service keys for the organization it merely belongs to.
    refused = await api.post(
        "/api/v1/api-keys",
        json={"name": "erp", "organization_id": str(w.orgs["C1"])},
        headers=bearer(w.keys["customer_member"]),
    )
    assert refused.status_code == 403
