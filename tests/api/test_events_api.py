"""The outbox: administrators read the events of their subtree, newest first; members read none."""

from __future__ import annotations

from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Event, EventKind, utcnow
from tests.conftest import RightsWorld, bearer

EVENTS = "/api/v1/events"


async def test_events_are_read_by_the_administrators_of_their_organization(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    now = utcnow()
    async with sessions() as session:
        for index, org in enumerate(["C1", "G1", "C3", "C1"]):
            session.add(
                Event(
                    key=f"test:{index}",
                    kind=EventKind.notification if index % 2 == 0 else EventKind.webhook,
                    name=f"event-{index}",
                    organization_id=w.orgs[org],
                    recipients=["someone@example.com"],
                    subject=f"subject {index}",
                    created_at=now + timedelta(seconds=index),
                )
            )
        await session.commit()

    async def names(who: str, **params: str) -> list[str]:
        response = await api.get(EVENTS, params=params, headers=bearer(w.keys[who]))
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert await names("customer_admin") == ["event-3", "event-1", "event-0"]
    assert await names("reseller_admin") == ["event-3", "event-1", "event-0"]
    assert await names("foreign_admin") == ["event-2"]
    assert await names("customer_member") == []
    assert await names("vendor_admin") == ["event-3", "event-2", "event-1", "event-0"]
    assert await names("vendor_admin", kind="webhook") == ["event-3", "event-1"]

    first = (await api.get(EVENTS, params={"limit": "3"}, headers=bearer(w.keys["vendor_admin"]))).json()
    rest = await api.get(EVENTS, params={"cursor": first["next_cursor"]}, headers=bearer(w.keys["vendor_admin"]))
    assert [item["name"] for item in first["items"] + rest.json()["items"]] == [
        "event-3",
        "event-2",
        "event-1",
        "event-0",
    ]
    bad = await api.get(EVENTS, params={"cursor": "garbage"}, headers=bearer(w.keys["vendor_admin"]))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.cursor"


async def test_recipients_are_shown_only_to_those_who_may_see_those_people(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    # An approval request in C1 went to its admin, the reseller's admin, the vendor's admin and a fixed address.
    everyone = [
        "customer.admin@example.com",
        "customer.member@example.com",
        "reseller.admin@example.com",
        "admin@vendor.example",
        "licensing@vendor.example",
    ]
    async with sessions() as session:
        session.add(
            Event(
                key="test:recipients",
                kind=EventKind.notification,
                name="approval.txt",
                organization_id=w.orgs["C1"],
                recipients=everyone,
            )
        )
        await session.commit()

    async def seen(who: str) -> tuple[list[str], int]:
        response = await api.get(EVENTS, headers=bearer(w.keys[who]))
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        return item["recipients"], item["recipients_hidden"]

    assert await seen("vendor_admin") == (everyone, 0)
    # The reseller's admin reaches C1's people and itself, not the vendor's.
    assert await seen("reseller_admin") == (
        ["customer.admin@example.com", "customer.member@example.com", "reseller.admin@example.com"],
        2,
    )
    # C1's admin sees C1's people only: the approvers above it are counted, never named.
    assert await seen("customer_admin") == (["customer.admin@example.com", "customer.member@example.com"], 3)
