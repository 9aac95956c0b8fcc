"""Signing in for a personal key, its rate limits, and managing one's keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.settings import Settings
from tests.api.people import PASSWORD, client_for, give_password, sign_in
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"


def _comparable(response_json: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in response_json.items() if key != "instance"}


async def test_a_personal_key_carries_the_account_and_the_scopes_asked(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, ADMIN)
    response = await api.post(
        "/api/v1/auth/keys",
        json={
            "email": "Customer.Admin@example.com",
            "password": PASSWORD,
            "name": "laptop",
            "scopes": ["tickets:read"],
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "laptop"
    assert created["user_id"] == str(rights_world.users["customer_admin"])
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    key = bearer(created["secret"])
    assert (await api.get("/api/v1/tickets", headers=key)).status_code == 200
    assert (await api.get("/api/v1/organizations", headers=key)).status_code == 403


@pytest.mark.usefixtures("rights_world")
async def test_wrong_password_and_unknown_address_get_the_same_answer(api: AsyncClient, sessions: Sessions) -> None:
    await give_password(sessions, ADMIN)
    wrong = await api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": "not the password at all"})
    unknown = await api.post("/api/v1/auth/keys", json={"email": "ghost@example.com", "password": PASSWORD})
    # An account that never set a password (invited, not yet redeemed) is just as unknown.
    no_password = await api.post("/api/v1/auth/keys", json={"email": "m.c2@example.com", "password": PASSWORD})
    malformed = await api.post("/api/v1/auth/keys", json={"email": "not an address", "password": PASSWORD})
    # Text that no encoder takes is refused as input, never a server error.
    surrogate = await api.post(
        "/api/v1/auth/keys",
        content='{"email": "a@example.com", "password": "lone \\ud800 surrogate"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert surrogate.json()["errors"][0]["field"] == "password"
    answers = [wrong, unknown, no_password, malformed]
    assert {a.status_code for a in answers} == {401}
    assert len({str(_comparable(a.json())) for a in answers}) == 1
    assert wrong.json()["code"] == "sign-in-failed"


@pytest.mark.usefixtures("rights_world")
async def test_failed_sign_ins_are_limited_per_account_at_the_edge(settings: Settings, sessions: Sessions) -> None:
    await give_password(sessions, ADMIN)
    limited = settings.model_copy(update={"sign_in_limit_account": "3/minute", "sign_in_limit_client": "100/minute"})
    async with client_for(limited) as api:
        for _ in range(3):
            assert (
                await api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": "wrong guess"})
            ).status_code == 401
        blocked = await api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": PASSWORD})
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "too-many-requests"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # Another account from the same client is not held back by this one's failures.
        await give_password(sessions, "reseller.admin@example.com")
        await sign_in(api, "reseller.admin@example.com")


@pytest.mark.usefixtures("rights_world")
async def test_a_success_clears_the_account_count(settings: Settings, sessions: Sessions) -> None:
    await give_password(sessions, ADMIN)
    limited = settings.model_copy(update={"sign_in_limit_account": "3/minute", "sign_in_limit_client": "100/minute"})
    async with client_for(limited) as api:
        for _ in range(2):
            await api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": "wrong guess"})
        await sign_in(api, ADMIN)
        for _ in range(3):
            assert (
                await api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": "wrong guess"})
            ).status_code == 401


@pytest.mark.usefixtures("rights_world")
async def test_failed_sign_ins_are_limited_per_client_address(settings: Settings) -> None:
    limited = settings.model_copy(update={"sign_in_limit_account": "100/minute", "sign_in_limit_client": "4/minute"})
    async with client_for(limited) as api:
        statuses = [
            (
                await api.post("/api/v1/auth/keys", json={"email": f"guess{n}@example.com", "password": PASSWORD})
            ).status_code
            for n in range(5)
        ]
        assert statuses == [401, 401, 401, 401, 429]


@pytest.mark.usefixtures("rights_world")
async def test_a_burst_of_simultaneous_guesses_stops_at_the_limit(settings: Settings, sessions: Sessions) -> None:
    await give_password(sessions, ADMIN)
    limited = settings.model_copy(update={"sign_in_limit_account": "3/minute", "sign_in_limit_client": "100/minute"})
    async with client_for(limited) as api:
        answers = await asyncio.gather(
            *(api.post("/api/v1/auth/keys", json={"email": ADMIN, "password": f"guess {n}"}) for n in range(8))
        )
    assert sorted(a.status_code for a in answers) == [401] * 3 + [429] * 5


async def test_people_list_their_own_keys_and_admins_the_service_keys(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    own = await api.get("/api/v1/api-keys", headers=bearer(w.keys["customer_admin"]))
    assert own.status_code == 200
    items = own.json()["items"]
    assert {item["name"] for item in items} == {"k", "revoked", "expired"}
    assert all(item["user_id"] == str(w.users["customer_admin"]) for item in items)
    assert all("secret" not in item and "secret_hash" not in item for item in items)
    assert any(item["revoked_at"] for item in items)
    service = await api.get(
        "/api/v1/api-keys", params={"organization_id": str(w.orgs["G1"])}, headers=bearer(w.keys["customer_admin"])
    )
    assert [item["id"] for item in service.json()["items"]] == [str(w.service_keys["G1"])]
    member = await api.get(
        "/api/v1/api-keys", params={"organization_id": str(w.orgs["C1"])}, headers=bearer(w.keys["customer_member"])
    )
    assert member.status_code == 403
    foreign = await api.get(
        "/api/v1/api-keys", params={"organization_id": str(w.orgs["C3"])}, headers=bearer(w.keys["customer_admin"])
    )
    assert foreign.status_code == 404
    # Someone else's personal key is not found, whoever asks to revoke it.
    someone_else = own.json()["items"][0]["id"]
    assert (
        await api.delete(f"/api/v1/api-keys/{someone_else}", headers=bearer(w.keys["sibling_admin"]))
    ).status_code == 404


async def test_a_key_minted_by_an_expiring_key_expires_no_later(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, ADMIN)
    soon = datetime.now(UTC) + timedelta(days=2)
    expiring = await sign_in(api, ADMIN, expires_at=soon.isoformat())
    inherited = await api.post("/api/v1/api-keys", json={"name": "child"}, headers=bearer(expiring))
    assert inherited.status_code == 201, inherited.text
    assert datetime.fromisoformat(inherited.json()["expires_at"]) == datetime.fromisoformat(soon.isoformat())
    earlier = soon - timedelta(days=1)
    shorter = await api.post(
        "/api/v1/api-keys", json={"name": "shorter", "expires_at": earlier.isoformat()}, headers=bearer(expiring)
    )
    assert shorter.status_code == 201
    assert datetime.fromisoformat(shorter.json()["expires_at"]) == earlier
    longer = await api.post(
        "/api/v1/api-keys",
        json={"name": "longer", "expires_at": (soon + timedelta(seconds=1)).isoformat()},
        headers=bearer(expiring),
    )
    assert longer.status_code == 422
    assert longer.json()["errors"][0]["field"] == "expires_at"
    service = await api.post(
        "/api/v1/api-keys",
        json={"name": "erp", "organization_id": str(rights_world.orgs["C1"])},
        headers=bearer(expiring),
    )
    assert datetime.fromisoformat(service.json()["expires_at"]) == datetime.fromisoformat(soon.isoformat())


@pytest.mark.usefixtures("rights_world")
async def test_a_key_cannot_mint_more_scopes_than_it_has(api: AsyncClient, sessions: Sessions) -> None:
    await give_password(sessions, ADMIN)
    narrow = await sign_in(api, ADMIN, scopes=["api-keys:write", "tickets:read"])
    wider = await api.post("/api/v1/api-keys", json={"name": "x", "scopes": ["orders:write"]}, headers=bearer(narrow))
    assert wider.status_code == 403
    assert wider.json()["errors"][0]["field"] == "scopes.0"
    everything = await api.post("/api/v1/api-keys", json={"name": "x"}, headers=bearer(narrow))
    assert everything.status_code == 403
    same = await api.post("/api/v1/api-keys", json={"name": "x", "scopes": ["tickets:read"]}, headers=bearer(narrow))
    assert same.status_code == 201
