"""Tickets: lookup by code in the body, showing the code again, re-allocation within the license's organization."""

from __future__ import annotations

import re

from httpx import AsyncClient

from tessera.licenses.codes import generate_code
from tests.conftest import RightsWorld, bearer


def test_codes_carry_at_least_128_bits_in_crockford_groups() -> None:
    codes = {generate_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){6}[0-9A-HJKMNP-TV-Z]{4}", code)


async def test_lookup_accepts_the_code_as_people_type_it(api: AsyncClient, rights_world: RightsWorld) -> None:
    code = rights_world.codes["own"]
    sloppy = code.replace("-", " ").lower().replace("1", "l").replace("0", "o")
    found = await api.post(
        "/api/v1/tickets/lookup", json={"code": sloppy}, headers=bearer(rights_world.keys["customer_member"])
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == str(rights_world.tickets["own"])
    garbage = await api.post(
        "/api/v1/tickets/lookup", json={"code": "nope"}, headers=bearer(rights_world.keys["customer_member"])
    )
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["field"] == "code"


async def test_the_code_is_shown_again_to_those_entitled(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    path = f"/api/v1/tickets/{w.tickets['own_named']}/code"
    for who in ("customer_member", "customer_admin", "reseller_admin"):
        response = await api.post(path, headers=bearer(w.keys[who]))
        assert response.status_code == 200, who
        assert response.json() == {"code": w.codes["own_named"]}
        assert response.headers["cache-control"] == "no-store"


async def test_reallocation_to_a_member_and_to_a_group(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    path = f"/api/v1/tickets/{w.tickets['own_admins_only']}"
    mine = {"mine": "true"}
    to_member = await api.patch(path, json={"allocated_user_id": str(w.users["subgroup_member"])}, headers=admin)
    assert to_member.status_code == 200, to_member.text
    member = bearer(w.keys["subgroup_member"])
    assert str(w.tickets["own_admins_only"]) in {
        t["id"] for t in (await api.get("/api/v1/tickets", params=mine, headers=member)).json()["items"]
    }
    to_group = await api.patch(
        path,
        json={"allocated_user_id": None, "organization_id": str(w.orgs["G1"]), "visibility": "all_members"},
        headers=admin,
    )
    assert to_group.status_code == 200, to_group.text
    assert to_group.json()["organization_id"] == str(w.orgs["G1"])
    foreign_user = await api.patch(path, json={"allocated_user_id": str(w.users["foreign_admin"])}, headers=admin)
    assert foreign_user.status_code == 422
    assert foreign_user.json()["errors"][0]["field"] == "allocated_user_id"
    elsewhere = await api.patch(
        path, json={"organization_id": str(w.orgs["C2"])}, headers=bearer(w.keys["reseller_admin"])
    )
    assert elsewhere.status_code == 422
    assert elsewhere.json()["errors"][0]["field"] == "organization_id"


async def test_a_named_holder_sees_but_may_not_reallocate(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    path = f"/api/v1/tickets/{w.tickets['own_named']}"
    member = bearer(w.keys["customer_member"])
    assert (await api.get(path, headers=member)).status_code == 200
    assert (await api.patch(path, json={"visibility": "all_members"}, headers=member)).status_code == 403
