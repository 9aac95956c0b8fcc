"""external_ref is scoped to the top-level organization below the vendor: resellers' ERPs never collide."""

from __future__ import annotations

from collections import Counter

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Grant, Order
from tests.api.test_orders_api import order_body, post_order
from tests.api.test_rights_concurrency import at_once, warm
from tests.conftest import RightsWorld

STORED = 503  # Temporal is not running here: an accepted order is stored and answered with 503 (repeat it)


async def _orders_with(sessions: async_sessionmaker[AsyncSession], ref: str) -> list[Order]:
    async with sessions() as session:
        return list((await session.scalars(select(Order).where(Order.external_ref == ref))).all())


async def test_two_resellers_use_the_same_reference_without_learning_of_each_other(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    ours = await post_order(api, w, "reseller_admin", order_body(w, "C1", external_ref="4711"))
    theirs = await post_order(api, w, "foreign_admin", order_body(w, "C3", external_ref="4711"))
    assert (ours.status_code, theirs.status_code) == (STORED, STORED), (ours.text, theirs.text)
    orders = await _orders_with(sessions, "4711")
    assert {o.external_ref_scope_id for o in orders} == {w.orgs["R1"], w.orgs["R2"]}
    # A retry in each scope finds its own order, never the other one.
    again = await post_order(api, w, "foreign_admin", order_body(w, "C3", quantity=2, external_ref="4711"))
    assert again.status_code == STORED
    assert len(await _orders_with(sessions, "4711")) == 2
    # The vendor's own organizations form a scope of their own.
    vendor = await post_order(api, w, "vendor_admin", order_body(w, "S", external_ref="4711"))
    assert vendor.status_code == STORED, vendor.text
    assert len(await _orders_with(sessions, "4711")) == 3


async def test_concurrent_identical_references_in_one_scope_make_one_order(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    await warm(api, w, "reseller_admin", "customer_admin")
    who = ["reseller_admin", "customer_admin"] * 5  # new keys each time: only the reference makes them one
    responses = await at_once(
        *(post_order(api, w, name, order_body(w, "C1", quantity=2, external_ref="SO-1")) for name in who)
    )
    assert Counter(r.status_code for r in responses) == {STORED: 10}, [r.text for r in responses]
    [order] = await _orders_with(sessions, "SO-1")
    assert order.quantity == 2
    async with sessions() as session:
        used = await session.scalar(select(Grant.quota_used).where(Grant.id == w.grants["C1"]))
        count = await session.scalar(select(func.count()).select_from(Order).where(Order.grant_id.is_not(None)))
    assert (used, count) == (2, 1)
