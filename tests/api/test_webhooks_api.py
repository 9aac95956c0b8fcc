"""The webhook API: endpoints within reach, refused input naming its field, rotation, deliveries, event types."""

from __future__ import annotations

from httpx import AsyncClient

from tests.conftest import RightsWorld, bearer

V1 = "/api/v1"


def body(world: RightsWorld, org: str = "C1", **changes: object) -> dict[str, object]:
    return {
        "organization_id": str(world.orgs[org]),
        "url": "https://hooks.example.com/tessera",
        "event_types": ["order.fulfilled", "order.failed"],
        **changes,
    }


async def test_an_admin_registers_reads_changes_rotates_and_deletes_an_endpoint(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    auth = bearer(rights_world.keys["customer_admin"])
    created = await api.post(f"{V1}/webhook-endpoints", json=body(rights_world), headers=auth)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    path = f"{V1}/webhook-endpoints/{endpoint['id']}"
    shown = (await api.get(path, headers=auth)).json()
    assert "secret" not in shown
    assert endpoint["secret"] not in (await api.get(f"{V1}/webhook-endpoints", headers=auth)).text
    changed = await api.patch(path, json={"event_types": ["order.fulfilled"], "status": "disabled"}, headers=auth)
    assert changed.json()["event_types"] == ["order.fulfilled"]
    assert changed.json()["status"] == "disabled"
    rotated = await api.post(f"{path}/secret", headers=auth)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    immediate = await api.post(f"{path}/secret", json={"overlap_seconds": 0}, headers=auth)
    assert immediate.json()["previous_secret_expires_at"] is None
    deliveries = await api.get(f"{path}/deliveries", headers=auth)
    assert deliveries.json() == {"items": [], "next_cursor": None}
    assert (await api.delete(path, headers=auth)).status_code == 204
    assert (await api.get(path, headers=auth)).status_code == 404


async def test_other_organizations_endpoints_are_not_found(api: AsyncClient, rights_world: RightsWorld) -> None:
    mine = await api.post(
        f"{V1}/webhook-endpoints", json=body(rights_world), headers=bearer(rights_world.keys["customer_admin"])
    )
    path = f"{V1}/webhook-endpoints/{mine.json()['id']}"
    for stranger in ("sibling_admin", "foreign_admin", "customer_member"):
        auth = bearer(rights_world.keys[stranger])
        assert (await api.get(path, headers=auth)).status_code == 404
        assert (await api.patch(path, json={"description": "x"}, headers=auth)).status_code == 404
        assert (await api.post(f"{path}/secret", headers=auth)).status_code == 404
        assert (await api.delete(path, headers=auth)).status_code == 404
        listed = await api.get(f"{V1}/webhook-endpoints", headers=auth)
        assert mine.json()["id"] not in listed.text
    foreign = await api.post(
        f"{V1}/webhook-endpoints", json=body(rights_world, "C3"), headers=bearer(rights_world.keys["customer_admin"])
    )
    assert foreign.status_code == 422
    assert foreign.json()["errors"][0]["field"] == "organization_id"


async def test_malformed_urls_and_unknown_event_types_are_refused_naming_the_field(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    auth = bearer(rights_world.keys["customer_admin"])
    for url in ("http://hooks.example.com/", "https://10.0.0.1/", "https://169.254.169.254/", "not a url", "x" * 3000):
        answer = await api.post(f"{V1}/webhook-endpoints", json=body(rights_world, url=url), headers=auth)
        assert answer.status_code == 422, url
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"][0]["field"] == "url", answer.text
    unknown = await api.post(
        f"{V1}/webhook-endpoints",
        json=body(rights_world, event_types=["order.fulfilled", "order.shipped"]),
        headers=auth,
    )
    assert unknown.status_code == 422
    issue = unknown.json()["errors"][0]
    assert issue["field"] == "event_types.1"
    assert "order.failed" in issue["message"]
    assert "subscription.renewed" in issue["message"]
    empty = await api.post(f"{V1}/webhook-endpoints", json=body(rights_world, event_types=[]), headers=auth)
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "event_types"


async def test_event_types_are_published_with_their_schemas(api: AsyncClient) -> None:
    answer = await api.get(f"{V1}/event-types")
    assert answer.status_code == 200
    types = {item["type"]: item["schema"] for item in answer.json()["items"]}
    expected = {"order.fulfilled", "order.failed", "license.revoked", "report.ready", "report.generated"}
    assert expected | {f"subscription.{s}" for s in ("renewed", "cancelled", "revoked", "expired")} == set(types)
    assert types["order.failed"]["properties"]["data"]["required"] == sorted(
        ["order_id", "status", "external_ref", "reason", "revoked_license_ids"]
    )


async def test_redelivering_a_notification_is_a_conflict(api: AsyncClient, rights_world: RightsWorld) -> None:
    from tessera.models import EventKind
    from tests.webhook_world import add_event

    sessions = api._transport.app.state.tessera.session_factory  # type: ignore[attr-defined]
    event_id = await add_event(sessions, rights_world.orgs["C1"], name="invitation.txt.j2", kind=EventKind.notification)
    answer = await api.post(f"{V1}/events/{event_id}/redeliver", headers=bearer(rights_world.keys["vendor_admin"]))
    assert answer.status_code == 409
