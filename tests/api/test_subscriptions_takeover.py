"""Taking over a subscription from another system: `subscription_start` on an order, checked field by field.

Rules of the intake, not of a database: run on SQLite only.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.licenses.fulfilment import create_order_license_chunk
from tessera.models import Order, Subscription, SubscriptionTerm, utcnow
from tessera.subscriptions.plans import plan_of, term_covering
from tests.api.subscriptions import add_subscription_products
from tests.api.test_orders_api import order_body, post_order
from tests.conftest import TEST_SECRET, RightsWorld, bearer


@pytest.fixture
async def products(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> None:
    await add_subscription_products(sessions, rights_world)


def _body(w: RightsWorld, start: Any, product: str = "SUB-CAD") -> dict[str, Any]:
    return order_body(w, product=product, quantity=2, subscription_start=start)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("products")
async def test_a_taken_over_subscription_starts_at_the_current_term_with_the_earlier_ones_imported(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    start = utcnow().date().replace(day=1) - timedelta(days=3 * 366)
    response = await post_order(orders_api, w, "vendor_admin", _body(w, start.isoformat()), key="takeover-1")
    assert response.status_code == 202, response.text
    order_id = uuid.UUID(response.json()["id"])
    # The start is part of what the Idempotency-Key compares: another start under the same key is refused.
    other = await post_order(
        orders_api, w, "vendor_admin", _body(w, (start + timedelta(days=1)).isoformat()), key="takeover-1"
    )
    assert other.status_code == 422, other.text
    assert [issue["field"] for issue in other.json()["errors"]] == ["header.Idempotency-Key"]
    same = await post_order(orders_api, w, "vendor_admin", _body(w, start.isoformat()), key="takeover-1")
    assert same.json()["id"] == str(order_id)

    async with sessions() as session:  # the order workflow's license step
        order = await session.get(Order, order_id)
        assert order is not None
        assert order.subscription_start == start
        await create_order_license_chunk(session, TEST_SECRET, order_id, 0)
        await session.commit()
        subscription = await session.scalar(select(Subscription).where(Subscription.order_id == order_id))
        assert subscription is not None
        kinds = (
            await session.scalars(
                select(SubscriptionTerm.kind)
                .where(SubscriptionTerm.subscription_id == subscription.id)
                .order_by(SubscriptionTerm.term_no)
            )
        ).all()
    current = term_covering(plan_of(subscription), utcnow())
    assert subscription.start_date == start
    assert subscription.term_no == current.number == subscription.imported_terms + 1
    assert subscription.imported_terms == 3
    assert list(kinds) == ["imported", "imported", "imported", "first"]
    shown = await orders_api.get(f"/api/v1/subscriptions/{subscription.id}", headers=bearer(w.keys["vendor_admin"]))
    assert shown.json()["imported_terms"] == 3
    assert shown.json()["current_term"]["number"] == 4


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("products")
async def test_takeover_mistakes_are_refused_naming_the_field(
    orders_api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    today = utcnow().date()
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("vendor_admin", _body(w, (today + timedelta(days=2)).isoformat()), 422),  # in the future
        ("vendor_admin", _body(w, "2020-01-01", product="PRO-CAD"), 422),  # not a subscription product
        ("vendor_admin", _body(w, "1900-01-01", product="SUB-CAD-ACT"), 422),  # monthly: over 1200 terms back
        ("vendor_admin", _body(w, "2020-13-01"), 422),
        ("vendor_admin", _body(w, "2020-1-1"), 422),
        ("vendor_admin", _body(w, 20200101), 422),
        ("vendor_admin", _body(w, "2020-01-01T00:00:00"), 422),
        ("customer_admin", _body(w, "2020-01-01"), 403),  # only vendor administrators take over
    ]
    for who, body, expected in cases:
        response = await post_order(orders_api, w, who, body)
        assert response.status_code == expected, (body, response.text)
        assert "subscription_start" in [issue["field"] for issue in response.json()["errors"]], response.json()
    # A century of yearly terms is within the bound; its latest day is today.
    assert (await post_order(orders_api, w, "vendor_admin", _body(w, "1930-05-17"))).status_code == 202
    assert (await post_order(orders_api, w, "vendor_admin", _body(w, today.isoformat()))).status_code == 202
