"""Races on one subscription, fired through the ASGI app on both databases: its row lock decides.

Invariants checked afterwards: at most one live cancellation, cancellation numbers without gaps or twins, one ERP
term per reference, and the quota held for seats equal to what the subscription asks for.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import LIVE_CANCELLATION_STATUSES, Cancellation, Subscription, SubscriptionTerm, utcnow
from tests.api.subscriptions import SUBSCRIPTIONS, add_subscription_products, give_permissions, make_subscription
from tests.api.test_orders_api import quota_used
from tests.conftest import RightsWorld, bearer

CONCURRENT = 10


@pytest.fixture
async def products(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> None:
    await add_subscription_products(sessions, rights_world)
    await give_permissions(sessions, rights_world, "C1", ["allocate", "cancel", "create", "revoke"])


async def _cancellations(sessions: async_sessionmaker[AsyncSession], subscription: Subscription) -> list[Cancellation]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Cancellation).where(Cancellation.subscription_id == subscription.id).order_by(Cancellation.n)
        )
        return list(rows.all())


@pytest.mark.usefixtures("products")
async def test_concurrent_cancels_make_one_cancellation(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}/cancel"
    responses = await asyncio.gather(
        *(orders_api.post(path, headers=bearer(w.keys["customer_admin"])) for _ in range(CONCURRENT))
    )
    assert Counter(r.status_code for r in responses) == {202: 1, 409: CONCURRENT - 1}, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"cancellation-exists"}
    async with sessions() as session:
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
    cancellations = await _cancellations(sessions, subscription)
    assert [(c.n, c.status) for c in cancellations] == [(1, "requested")]
    assert subscription.cancellations == 1


@pytest.mark.usefixtures("products")
async def test_cancels_and_uncancels_racing_keep_at_most_one_live_cancellation(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    base = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    headers = bearer(w.keys["customer_admin"])
    responses = await asyncio.gather(
        *(orders_api.post(f"{base}/{'cancel' if i % 2 == 0 else 'uncancel'}", headers=headers) for i in range(16))
    )
    assert {r.status_code for r in responses} <= {200, 202, 409}, [r.text for r in responses]
    accepted = sum(r.status_code == 202 for r in responses)
    withdrawn = sum(r.status_code == 200 for r in responses)
    async with sessions() as session:
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
    cancellations = await _cancellations(sessions, subscription)
    assert [c.n for c in cancellations] == list(range(1, accepted + 1))
    assert subscription.cancellations == accepted
    live = [c for c in cancellations if c.status in LIVE_CANCELLATION_STATUSES]
    assert len(live) <= 1
    assert sum(c.status == "withdrawn" for c in cancellations) == withdrawn
    assert len(live) == accepted - withdrawn
    if not live:
        assert subscription.status == "active"


@pytest.mark.usefixtures("products")
async def test_concurrent_erp_posts_with_one_reference_make_one_term(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, product="SUB-CAD-ERP")
    body = {"valid_through": (utcnow().date() + timedelta(days=900)).isoformat(), "external_ref": "SO-9/1"}
    responses = await asyncio.gather(
        *(
            api.post(
                f"{SUBSCRIPTIONS}/{made.subscription_id}/terms", json=body, headers=bearer(w.keys["reseller_admin"])
            )
            for _ in range(CONCURRENT)
        )
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: CONCURRENT - 1}, [r.text for r in responses]
    assert len({r.json()["term_no"] for r in responses}) == 1
    async with sessions() as session:
        terms = await session.scalar(
            select(func.count()).where(SubscriptionTerm.subscription_id == made.subscription_id)
        )
        subscription = await session.get(Subscription, made.subscription_id)
    assert terms == 2
    assert subscription is not None
    assert subscription.term_no == 2


@pytest.mark.usefixtures("products")
async def test_concurrent_seat_changes_hold_exactly_the_quota_asked_for(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")  # quota 10, 2 used
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    responses = await asyncio.gather(
        *(
            api.patch(path, json={"quantity": quantity}, headers=bearer(w.keys["customer_admin"]))
            for quantity in range(3, 3 + CONCURRENT)  # 3..12: the last two exceed the quota from any state
        )
    )
    assert {r.status_code for r in responses} <= {200, 403}, [r.text for r in responses]
    async with sessions() as session:
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
    asked = subscription.next_quantity or subscription.quantity
    assert await quota_used(sessions, w.grants["C1"]) == asked <= 10
    assert [r.status_code for r in responses][-2:] == [403, 403]
