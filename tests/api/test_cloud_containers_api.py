"""Cloud containers through the API: reach (owner, group admin, member, stranger), the credential file shown once,
rotation, and the device limit at its edge."""

from __future__ import annotations

import json

from httpx import AsyncClient

from tests.conftest import RightsWorld, bearer

V1 = "/api/v1"
CONTAINERS = f"{V1}/cloud-containers"


async def _create(api: AsyncClient, world: RightsWorld, who: str, **body: object) -> dict[str, object]:
    response = await api.post(CONTAINERS, json=body, headers=bearer(world.keys[who]))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def _file(created: dict[str, object]) -> dict[str, str]:
    credential_file = created["credential_file"]
    assert isinstance(credential_file, dict)
    return credential_file


async def _access(
    api: AsyncClient, container_id: object, credential: str, device: str
) -> tuple[int, dict[str, object]]:
    response = await api.post(
        f"{CONTAINERS}/{container_id}/access", json={"credential": credential, "device_id": device}
    )
    payload: dict[str, object] = response.json()
    return response.status_code, payload


async def test_a_member_creates_their_own_and_sees_only_their_own(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    mine = await _create(api, w, "m_C1", name="laptop pool")
    assert mine["user_id"] == str(w.users["m_C1"])
    assert mine["organization_id"] == str(w.orgs["C1"])
    credential_file = _file(mine)
    assert credential_file["cloud_container_id"] == mine["id"]
    assert credential_file["credential"].startswith("tcc_")
    assert credential_file["api_base_url"].endswith("/api/v1")
    json.dumps(credential_file)  # a file the software can store as it is
    other = await _create(api, w, "customer_member")
    org_container = await _create(api, w, "customer_admin", organization_id=str(w.orgs["C1"]), for_organization=True)
    listed = await api.get(CONTAINERS, headers=bearer(w.keys["m_C1"]))
    assert [item["id"] for item in listed.json()["items"]] == [mine["id"]]
    shown = await api.get(f"{CONTAINERS}/{mine['id']}", headers=bearer(w.keys["m_C1"]))
    assert shown.status_code == 200
    assert "credential_file" not in shown.json()
    assert credential_file["credential"] not in shown.text
    assert credential_file["credential"] not in listed.text
    for foreign in (other, org_container):
        assert (await api.get(f"{CONTAINERS}/{foreign['id']}", headers=bearer(w.keys["m_C1"]))).status_code == 404


async def test_group_admins_see_and_manage_their_members_containers(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    member_own = await _create(api, w, "m_G1")  # G1 lies below C1
    for_member = await _create(
        api, w, "customer_admin", organization_id=str(w.orgs["C1"]), user_id=str(w.users["m_C1"])
    )
    assert for_member["user_id"] == str(w.users["m_C1"])
    org_container = await _create(api, w, "customer_admin", organization_id=str(w.orgs["C1"]), for_organization=True)
    assert org_container["user_id"] is None
    ids = {
        str(item["id"])
        for item in (await api.get(CONTAINERS, headers=bearer(w.keys["customer_admin"]))).json()["items"]
    }
    assert {member_own["id"], for_member["id"], org_container["id"]} <= ids
    reseller = {
        str(i["id"]) for i in (await api.get(CONTAINERS, headers=bearer(w.keys["reseller_admin"]))).json()["items"]
    }
    assert {member_own["id"], for_member["id"], org_container["id"]} <= reseller
    # The member's own container: the admin above rotates it and deletes it.
    rotated = await api.post(f"{CONTAINERS}/{member_own['id']}/credentials", headers=bearer(w.keys["customer_admin"]))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["credential_generation"] == 2
    deleted = await api.delete(f"{CONTAINERS}/{member_own['id']}", headers=bearer(w.keys["customer_admin"]))
    assert deleted.status_code == 204
    assert (await api.get(f"{CONTAINERS}/{member_own['id']}", headers=bearer(w.keys["m_G1"]))).status_code == 404
    status, problem = await _access(api, member_own["id"], rotated.json()["credential_file"]["credential"], "d1")
    assert (status, problem["code"]) == (401, "invalid-credential")


async def test_strangers_get_404_and_cannot_create_for_others(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    mine = await _create(api, w, "m_C1")
    path = f"{CONTAINERS}/{mine['id']}"
    for stranger in ("sibling_admin", "foreign_admin", "customer_member", "m_C2"):
        auth = bearer(w.keys[stranger])
        assert (await api.get(path, headers=auth)).status_code == 404
        assert (await api.delete(path, headers=auth)).status_code == 404
        assert (await api.post(f"{path}/credentials", headers=auth)).status_code == 404
        assert (await api.delete(f"{path}/devices/d1", headers=auth)).status_code == 404
        assert str(mine["id"]) not in (await api.get(CONTAINERS, headers=auth)).text
    # A member cannot create one for someone else, nor for the organization.
    for body in (
        {"organization_id": str(w.orgs["C1"]), "user_id": str(w.users["customer_member"])},
        {"organization_id": str(w.orgs["C1"]), "for_organization": True},
    ):
        refused = await api.post(CONTAINERS, json=body, headers=bearer(w.keys["m_C1"]))
        assert refused.status_code == 403, refused.text
    # An organization out of reach is named as the field at fault, like a missing one.
    foreign = await api.post(
        CONTAINERS, json={"organization_id": str(w.orgs["C3"])}, headers=bearer(w.keys["customer_admin"])
    )
    assert foreign.status_code == 422
    assert foreign.json()["errors"][0]["field"] == "organization_id"
    missing = await api.get(
        f"{CONTAINERS}/00000000-0000-4000-8000-000000000000", headers=bearer(w.keys["vendor_admin"])
    )
    assert missing.status_code == 404


async def test_clumsy_input_is_refused_with_the_field_named(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    auth = bearer(w.keys["customer_admin"])
    cases = [
        ({"nmae": "typo"}, "nmae"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"organization_id": "not-a-uuid"}, "organization_id"),
        ({"organization_id": str(w.orgs["C1"]), "user_id": str(w.users["m_C2"])}, "user_id"),
        ({"organization_id": str(w.orgs["C1"]), "user_id": str(w.users["m_C1"]), "for_organization": True}, "user_id"),
    ]
    for body, field in cases:
        response = await api.post(CONTAINERS, json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert any(field in issue["field"] for issue in response.json()["errors"]), (body, response.json())
    # Several memberships: the organization must be named.
    ambiguous = await api.post(CONTAINERS, json={}, headers=bearer(w.keys["vendor_staff"]))
    assert ambiguous.status_code == 422
    assert ambiguous.json()["errors"][0]["field"] == "organization_id"
    # A service account owns nothing itself.
    made = await _create(api, w, "m_C1")
    for device in ("", "has space", "x" * 201, "tab\there"):
        status, problem = await _access(api, made["id"], _file(made)["credential"], device)
        assert status == 422, (device, problem)
    bad = await api.post(f"{CONTAINERS}/{made['id']}/access", json={"credential": "x", "device_id": "d", "extra": 1})
    assert bad.status_code == 422


async def test_the_credential_opens_its_container_only_and_rotation_ends_the_old_one(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    first = await _create(api, w, "m_C1")
    second = await _create(api, w, "m_C1")
    credential = _file(first)["credential"]
    status, granted = await _access(api, first["id"], credential, "device-1")
    assert status == 200, granted
    assert granted["certificates"] == []  # nothing activated into it yet
    status, problem = await _access(api, second["id"], credential, "device-1")
    assert (status, problem["code"]) == (401, "invalid-credential")
    status, problem = await _access(api, "00000000-0000-4000-8000-000000000000", credential, "device-1")
    assert (status, problem["code"]) == (401, "invalid-credential")
    rotated = await api.post(f"{CONTAINERS}/{first['id']}/credentials", headers=bearer(w.keys["m_C1"]))
    new_credential = rotated.json()["credential_file"]["credential"]
    assert new_credential != credential
    status, problem = await _access(api, first["id"], credential, "device-1")
    assert (status, problem["code"]) == (401, "invalid-credential")
    status, _granted = await _access(api, first["id"], new_credential, "device-1")
    assert status == 200
    # The device that used the old credential keeps its seat: a rotation is about the file, not the devices.
    shown = await api.get(f"{CONTAINERS}/{first['id']}", headers=bearer(w.keys["m_C1"]))
    assert [d["device_id"] for d in shown.json()["devices"]] == ["device-1"]


async def test_the_device_limit_at_its_edge_and_release(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    made = await _create(api, w, "m_C1")
    credential = _file(made)["credential"]
    for device in ("d1", "d2", "d3"):
        status, granted = await _access(api, made["id"], credential, device)
        assert status == 200, granted
    status, again = await _access(api, made["id"], credential, "d2")  # a known device comes back freely
    assert status == 200, again
    status, problem = await _access(api, made["id"], credential, "d4")
    assert (status, problem["code"]) == (409, "device-limit-reached")
    # The owner releases one; then the fourth device gets its seat, and the released one is refused in turn.
    released = await api.delete(f"{CONTAINERS}/{made['id']}/devices/d1", headers=bearer(w.keys["m_C1"]))
    assert released.status_code == 204
    status, _granted = await _access(api, made["id"], credential, "d4")
    assert status == 200
    status, problem = await _access(api, made["id"], credential, "d1")
    assert (status, problem["code"]) == (409, "device-limit-reached")
    # An admin above may release a member's device too; a device not seated is a 404.
    admin = bearer(w.keys["customer_admin"])
    assert (await api.delete(f"{CONTAINERS}/{made['id']}/devices/d2", headers=admin)).status_code == 204
    assert (await api.delete(f"{CONTAINERS}/{made['id']}/devices/d2", headers=admin)).status_code == 404
    shown = await api.get(f"{CONTAINERS}/{made['id']}", headers=admin)
    assert sorted(d["device_id"] for d in shown.json()["devices"]) == ["d3", "d4"]
    assert shown.json()["device_limit"] == 3


async def test_a_refused_credential_is_never_echoed(api: AsyncClient, rights_world: RightsWorld) -> None:
    made = await _create(api, rights_world, "m_C1")
    secret_like = "tcc_" + "s3cr3t" * 20  # too long: refused by the schema, before any look-up
    status, problem = await _access(api, made["id"], secret_like, "d1")
    assert status == 422
    assert "s3cr3t" not in json.dumps(problem)
    status, problem = await _access(api, made["id"], _file(made)["credential"] + "x", "d1")
    assert status == 401
    assert _file(made)["credential"] not in json.dumps(problem)


async def test_an_owner_who_left_the_organization_no_longer_reaches_their_container(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    made = await _create(api, w, "m_C1")
    left = await api.delete(
        f"{V1}/organizations/{w.orgs['C1']}/members/{w.users['m_C1']}", headers=bearer(w.keys["customer_admin"])
    )
    assert left.status_code == 204, left.text
    assert (await api.get(f"{CONTAINERS}/{made['id']}", headers=bearer(w.keys["m_C1"]))).status_code == 404
    # Its organization's administrators still manage it (and the credential file keeps working until they act).
    assert (await api.get(f"{CONTAINERS}/{made['id']}", headers=bearer(w.keys["customer_admin"]))).status_code == 200
    status, _granted = await _access(api, made["id"], _file(made)["credential"], "d1")
    assert status == 200
