"""Grants through the API: delegation within the delegator's bounds, withdrawal, and invalid input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import RightsWorld, bearer

Count = Callable[[str], Awaitable[int]]


def grant_path(world: RightsWorld, org: str, group: str = "CAD") -> str:
    return f"/api/v1/organizations/{world.orgs[org]}/grants/{group}"


async def test_delegation_up_to_the_remainder_and_not_beyond(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    reseller = bearer(w.keys["reseller_admin"])
    fresh = await api.post(
        "/api/v1/organizations",
        json={"kind": "customer", "parent_id": str(w.orgs["R1"]), "name": "C4"},
        headers=reseller,
    )
    path = f"/api/v1/organizations/{fresh.json()['id']}/grants/CAD"
    # R1 holds 100; C1 has 10 and C2 has 5 of it, so 85 remain.
    too_much = await api.put(path, json={"permissions": ["create"], "quota": 86}, headers=reseller)
    assert too_much.status_code == 403
    assert too_much.json()["errors"][0]["field"] == "quota"
    granted = await api.put(path, json={"permissions": ["create"], "quota": 85}, headers=reseller)
    assert granted.status_code == 201, granted.text
    assert granted.json()["delegated_from"] == str(w.grants["R1"])
    assert (await api.get(grant_path(w, "R1"), headers=reseller)).json()["quota_remaining"] == 0


async def test_withdrawing_the_resellers_grant_disables_the_customers(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    vendor = bearer(w.keys["vendor_admin"])
    customer = bearer(w.keys["customer_admin"])
    ticket = f"/api/v1/tickets/{w.tickets['own']}"
    assert (await api.patch(ticket, json={"visibility": "admins_only"}, headers=customer)).status_code == 200
    assert (await api.delete(grant_path(w, "R1"), headers=vendor)).status_code == 204
    assert (await api.get(grant_path(w, "C1"), headers=customer)).status_code == 404
    refused = await api.patch(ticket, json={"visibility": "all_members"}, headers=customer)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("group", "body", "field"),
    [
        ("NOPE", {"permissions": ["create"]}, "product_group"),
        ("CAD", {"permissions": ["create", "delete"]}, "permissions.1"),
        ("CAD", {"permissions": ["create"], "quota": -1}, "quota"),
        ("CAD", {"permissions": []}, "permissions"),
        ("CAD", {"permissions": ["create"], "forever": True}, "forever"),
    ],
)
async def test_invalid_grants_name_the_field_and_write_nothing(
    api: AsyncClient, rights_world: RightsWorld, row_count: Count, group: str, body: dict[str, Any], field: str
) -> None:
    before = (await row_count("grant_"), await row_count("grant_event"))
    fresh = await api.post(
        "/api/v1/organizations",
        json={"kind": "group", "parent_id": str(rights_world.orgs["C1"]), "name": "Lab"},
        headers=bearer(rights_world.keys["vendor_admin"]),
    )
    path = f"/api/v1/organizations/{fresh.json()['id']}/grants/{group}"
    response = await api.put(path, json=body, headers=bearer(rights_world.keys["vendor_admin"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    assert (await row_count("grant_"), await row_count("grant_event")) == before


async def test_grants_are_audited_with_who_did_them(
    api: AsyncClient, rights_world: RightsWorld, row_count: Count
) -> None:
    w = rights_world
    before = await row_count("grant_event")
    body = {"permissions": ["allocate"], "quota": 1, "delegable": False}
    changed = await api.put(grant_path(w, "G1"), json=body, headers=bearer(w.keys["customer_admin"]))
    assert changed.status_code == 200
    assert changed.json()["granted_by_user_id"] == str(w.users["customer_admin"])
    assert await row_count("grant_event") == before + 1
