"""Organizations through the API: the tree's rules, custom fields, filters, and problems that name the field."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import CatalogSetting
from tests.conftest import RightsWorld, bearer

V1 = "/api/v1"

Count = Callable[[str], Awaitable[int]]
ORGS = "/api/v1/organizations"


def problem_field(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["errors"][0]["field"])


@pytest.fixture
async def customer_fields(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(
            CatalogSetting(
                key="customer_fields",
                value=[
                    {"name": "industry", "label": {"en": "Industry"}, "type": "choice", "allowed": ["cad", "edu"]},
                    {"name": "since", "label": {"en": "Since"}, "type": "date"},
                ],
            )
        )
        await session.commit()


@pytest.mark.usefixtures("customer_fields")
async def test_a_reseller_admin_creates_a_customer_with_custom_fields(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    body = {
        "kind": "customer",
        "parent_id": str(rights_world.orgs["R1"]),
        "name": "Acme",
        "erp_customer_no": "K-1001",
        "country": "DE",
        "timezone": "Europe/Berlin",
        "custom_fields": {"industry": "edu", "since": "2024-02-29"},
    }
    auth = bearer(rights_world.keys["reseller_admin"])
    created = await api.post(ORGS, json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["custom_fields"] == {"industry": "edu", "since": "2024-02-29"}
    found = (await api.get(ORGS, params={"erp_customer_no": "K-1001"}, headers=auth)).json()["items"]
    assert [org["name"] for org in found] == ["Acme"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "department"}, "kind"),
        ({"kind": "vendor"}, "kind"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"country": "Germany"}, "country"),
        ({"parent_id": None}, "parent_id"),
        ({"custom_fields": {"colour": "red"}}, "custom_fields.colour"),
        ({"custom_fields": {"industry": "mining"}}, "custom_fields.industry"),
        ({"kind": "reseller"}, "parent_id"),  # a reseller sits below the vendor only
        ({"shoe_size": 44}, "shoe_size"),
    ],
)
@pytest.mark.usefixtures("customer_fields")
async def test_invalid_organizations_name_the_field_and_write_nothing(
    api: AsyncClient,
    rights_world: RightsWorld,
    row_count: Count,
    change: dict[str, Any],
    field: str,
) -> None:
    before = await row_count("organization")
    body = {"kind": "group", "parent_id": str(rights_world.orgs["C1"]), "name": "Lab", **change}
    response = await api.post(ORGS, json=body, headers=bearer(rights_world.keys["vendor_admin"]))
    assert response.status_code == 422
    assert problem_field(response) == field
    assert await row_count("organization") == before


async def test_a_cycle_is_refused_and_nothing_moves(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    auth = bearer(w.keys["vendor_admin"])
    response = await api.patch(f"{ORGS}/{w.orgs['C1']}", json={"parent_id": str(w.orgs["G1"])}, headers=auth)
    assert response.status_code == 422
    assert problem_field(response) == "parent_id"
    assert (await api.get(f"{ORGS}/{w.orgs['C1']}", headers=auth)).json()["parent_id"] == str(w.orgs["R1"])


async def test_moving_is_refused_once_rights_or_licenses_hang_on_the_node(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    auth = bearer(w.keys["vendor_admin"])
    refused = await api.patch(f"{ORGS}/{w.orgs['C2']}", json={"parent_id": str(w.orgs["R2"])}, headers=auth)
    assert refused.status_code == 409
    assert problem_field(refused) == "parent_id"
    fresh = await api.post(ORGS, json={"kind": "customer", "parent_id": str(w.orgs["R1"]), "name": "New"}, headers=auth)
    moved = await api.patch(f"{ORGS}/{fresh.json()['id']}", json={"parent_id": str(w.orgs["R2"])}, headers=auth)
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == str(w.orgs["R2"])
    # The reseller admin of R1 no longer sees it, and the answer is the one for a missing organization.
    lost = await api.get(f"{ORGS}/{fresh.json()['id']}", headers=bearer(w.keys["reseller_admin"]))
    assert lost.status_code == 404


async def test_deleting_a_node_with_licenses_is_refused_an_empty_leaf_goes(
    api: AsyncClient, rights_world: RightsWorld, row_count: Count
) -> None:
    w = rights_world
    auth = bearer(w.keys["reseller_admin"])
    refused = await api.delete(f"{ORGS}/{w.orgs['C2']}", headers=auth)
    assert refused.status_code == 409
    assert "licenses" in refused.json()["detail"]
    leaf = await api.post(ORGS, json={"kind": "group", "parent_id": str(w.orgs["C2"]), "name": "Tmp"}, headers=auth)
    before = await row_count("organization")
    assert (await api.delete(f"{ORGS}/{leaf.json()['id']}", headers=auth)).status_code == 204
    assert await row_count("organization") == before - 1


async def test_filters_and_cursor_walk_the_reach(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    auth = bearer(w.keys["reseller_admin"])
    customers = (await api.get(ORGS, params={"kind": "customer"}, headers=auth)).json()["items"]
    assert {org["name"] for org in customers} == {"C1", "C2"}
    children = (await api.get(ORGS, params={"parent_id": str(w.orgs["C1"])}, headers=auth)).json()["items"]
    assert [org["name"] for org in children] == ["G1"]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(ORGS, params=params, headers=auth)).json()
        seen += [org["name"] for org in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["C1", "C2", "G1", "R1"]


async def test_a_change_and_a_deletion_at_once_never_fail(api: AsyncClient, rights_world: RightsWorld) -> None:
    admin = bearer(rights_world.keys["reseller_admin"])
    assert (await api.get(f"{V1}/users/me", headers=admin)).status_code == 200  # first use of a key writes
    for round_no in range(8):
        created = await api.post(
            f"{V1}/organizations",
            json={"kind": "group", "parent_id": str(rights_world.orgs["C1"]), "name": f"short-lived {round_no}"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        url = f"{V1}/organizations/{created.json()['id']}"
        change, deletion = await asyncio.wait_for(
            asyncio.gather(api.patch(url, json={"name": "renamed"}, headers=admin), api.delete(url, headers=admin)),
            60,
        )
        assert deletion.status_code == 204, deletion.text
        # Before the deletion: renamed (200); after it: gone (404).
        assert change.status_code in (200, 404), change.text
        assert (await api.get(url, headers=admin)).status_code == 404
