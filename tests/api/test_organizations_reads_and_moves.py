"""Members and grants of an organization, and moves that keep the tree a tree under concurrency."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Organization
from tests.api.test_rights_concurrency import at_once, new_org, warm
from tests.conftest import RightsWorld, bearer

ORGS = "/api/v1/organizations"


async def test_members_are_listed_for_administrators_with_their_roles(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    url = f"{ORGS}/{w.orgs['C1']}/members"
    for who in ("customer_admin", "reseller_admin", "vendor_admin"):
        page = await api.get(url, headers=bearer(w.keys[who]))
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert {(item["email"], item["role"]) for item in items} == {
            ("customer.admin@example.com", "admin"),
            ("customer.member@example.com", "member"),
            ("m.C1@example.com", "member"),
        }
        assert {item["user_id"] for item in items} == {
            str(w.users[n]) for n in ("customer_admin", "customer_member", "m_C1")
        }
        assert all(item["name"] for item in items)
    # A member sees the organization but not who else is in it; outside reach it does not exist.
    assert (await api.get(url, headers=bearer(w.keys["customer_member"]))).status_code == 403
    assert (await api.get(url, headers=bearer(w.keys["sibling_admin"]))).status_code == 404
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page_json = (await api.get(url, params=params, headers=bearer(w.keys["customer_admin"]))).json()
        seen += [item["email"] for item in page_json["items"]]
        cursor = page_json["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert len(seen) == 3


async def test_grants_of_an_organization_with_what_remains(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    listed = await api.get(f"{ORGS}/{w.orgs['C1']}/grants", headers=bearer(w.keys["customer_member"]))
    assert listed.status_code == 200, listed.text
    [cad] = listed.json()["items"]
    assert cad["product_group"] == "CAD"
    assert cad["quota"] == 10
    assert cad["quota_remaining"] == 9  # one delegated to G1
    r1 = (await api.get(f"{ORGS}/{w.orgs['R1']}/grants", headers=bearer(w.keys["reseller_admin"]))).json()["items"]
    assert [(g["product_group"], g["quota_remaining"]) for g in r1] == [("CAD", 85)]
    # Withdrawn grants are not listed; outside reach is a 404.
    assert (
        await api.delete(f"{ORGS}/{w.orgs['C2']}/grants/CAD", headers=bearer(w.keys["reseller_admin"]))
    ).status_code == 204
    after = await api.get(f"{ORGS}/{w.orgs['C2']}/grants", headers=bearer(w.keys["sibling_admin"]))
    assert after.json()["items"] == []
    assert (await api.get(f"{ORGS}/{w.orgs['C1']}/grants", headers=bearer(w.keys["foreign_admin"]))).status_code == 404


async def _walks_to_the_root(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        parents = dict((await session.execute(select(Organization.id, Organization.parent_id))).all())
    roots = [org for org, parent in parents.items() if parent is None]
    assert len(roots) == 1
    for start in parents:
        seen: set[uuid.UUID] = set()
        node: uuid.UUID | None = start
        while node is not None:
            assert node not in seen, "a cycle in the organization tree"
            seen.add(node)
            node = parents[node]


async def test_crossing_moves_cannot_make_a_cycle(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    vendor = bearer(w.keys["vendor_admin"])
    await warm(api, w, "vendor_admin")
    for round_no in range(5):
        a = await new_org(api, w, "R2", "group", f"A{round_no}")
        b = await new_org(api, w, "R2", "group", f"B{round_no}")
        moves = await at_once(
            api.patch(f"{ORGS}/{a}", json={"parent_id": str(b)}, headers=vendor),
            api.patch(f"{ORGS}/{b}", json={"parent_id": str(a)}, headers=vendor),
        )
        assert sorted(Counter(m.status_code for m in moves).items()) == [(200, 1), (422, 1)], [m.text for m in moves]
        refused = next(m for m in moves if m.status_code == 422)
        assert refused.json()["errors"][0]["field"] == "parent_id"
        await _walks_to_the_root(sessions)


async def test_moving_below_its_own_subtree_names_parent_id(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    vendor = bearer(w.keys["vendor_admin"])
    top = await new_org(api, w, "R2", "group", "Top")
    middle = await new_org(api, w, "R2", "group", "Middle")
    assert (await api.patch(f"{ORGS}/{middle}", json={"parent_id": str(top)}, headers=vendor)).status_code == 200
    leaf = await new_org(api, w, middle, "group", "Leaf")
    for target in (leaf, middle, top):
        response = await api.patch(f"{ORGS}/{top}", json={"parent_id": str(target)}, headers=vendor)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "parent_id"


async def test_a_move_and_an_order_or_grant_below_it_never_both_succeed(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    vendor = bearer(w.keys["vendor_admin"])
    reseller = bearer(w.keys["reseller_admin"])
    await warm(api, w, "vendor_admin", "reseller_admin")
    outcomes: Counter[tuple[int, int]] = Counter()
    for round_no in range(8):
        target = await new_org(api, w, "R1", "customer", f"X{round_no}")
        if round_no % 2:
            write = api.put(
                f"{ORGS}/{target}/grants/CAD", json={"permissions": ["create"], "quota": 1}, headers=reseller
            )
        else:
            body = {"organization_id": str(target), "product": "PRO-CAD", "quantity": 1}
            write = api.post("/api/v1/orders", json=body, headers={**reseller, "Idempotency-Key": str(uuid.uuid4())})
        move, written = await at_once(
            api.patch(f"{ORGS}/{target}", json={"parent_id": str(w.orgs["R2"])}, headers=vendor), write
        )
        moved = move.status_code == 200
        accepted = written.status_code in (201, 503)  # 503: the order is stored (no Temporal here)
        assert not (moved and accepted), (move.text, written.text)
        assert moved or move.status_code == 409, move.text
        outcomes[(move.status_code, written.status_code)] += 1
        async with sessions() as session:
            parent = await session.scalar(select(Organization.parent_id).where(Organization.id == target))
        assert parent == (w.orgs["R2"] if moved else w.orgs["R1"])
    await _walks_to_the_root(sessions)
