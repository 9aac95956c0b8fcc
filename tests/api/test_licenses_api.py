"""Licenses within reach: administrators see their subtree's, members those whose ticket they may see."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Ticket
from tests.conftest import RightsWorld, bearer

LICENSES = "/api/v1/licenses"


async def _license_names(sessions: async_sessionmaker[AsyncSession], world: RightsWorld) -> dict[str, str]:
    """license id -> the name of its ticket in the world."""
    async with sessions() as session:
        rows = await session.execute(select(Ticket.id, Ticket.license_id))
        by_ticket = {row[0]: row[1] for row in rows.all()}
    return {str(by_ticket[ticket_id]): name for name, ticket_id in world.tickets.items()}


async def test_each_caller_lists_the_licenses_behind_the_tickets_it_may_see(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    names = await _license_names(sessions, w)
    expected = {
        "customer_admin": {"own", "subtree", "own_admins_only", "own_named"},
        "customer_member": {"own", "own_named"},
        "subgroup_member": {"subtree"},
        "reseller_member": set(),
        "foreign_admin": {"foreign"},
    }
    for who, visible in expected.items():
        page = (await api.get(LICENSES, headers=bearer(w.keys[who]))).json()
        assert {names[item["id"]] for item in page["items"]} == visible, who
        for item in page["items"]:
            assert item["product"] == "PRO-CAD"
            assert item["ticket"] is not None
            assert "code" not in item["ticket"]


async def test_one_license_by_id_and_pages_of_them(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    names = {name: license_id for license_id, name in (await _license_names(sessions, w)).items()}
    shown = await api.get(f"{LICENSES}/{names['own_named']}", headers=bearer(w.keys["customer_member"]))
    assert shown.status_code == 200
    assert shown.json()["ticket"]["allocated_user_id"] == str(w.users["customer_member"])
    hidden = await api.get(f"{LICENSES}/{names['own_admins_only']}", headers=bearer(w.keys["customer_member"]))
    assert hidden.status_code == 404
    missing = await api.get(f"{LICENSES}/{uuid.uuid4()}", headers=bearer(w.keys["vendor_admin"]))
    assert missing.status_code == 404

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(LICENSES, params=params, headers=bearer(w.keys["vendor_admin"]))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(names.values())
    revoked = await api.get(LICENSES, params={"status": "revoked"}, headers=bearer(w.keys["vendor_admin"]))
    assert revoked.json()["items"] == []
