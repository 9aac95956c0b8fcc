"""Rights under races, through the API on SQLite and PostgreSQL: quota, grant creation, withdrawal, the tree.

Every test fires its requests at once (each request is its own transaction) and checks invariants afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from httpx import AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Grant, GrantEvent, Order
from tests.conftest import RightsWorld, bearer

V1 = "/api/v1"
T = TypeVar("T")
ACCEPTED = {202, 503}  # stored; 503 only says Temporal is not running in these tests


async def new_org(api: AsyncClient, world: RightsWorld, parent: str | uuid.UUID, kind: str, name: str) -> uuid.UUID:
    parent_id = world.orgs[parent] if isinstance(parent, str) else parent
    response = await api.post(
        f"{V1}/organizations",
        json={"kind": kind, "parent_id": str(parent_id), "name": name},
        headers=bearer(world.keys["vendor_admin"]),
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


AT_ONCE_SECONDS = 120


async def at_once(*awaitables: Awaitable[T]) -> list[T]:
    """All at once and bounded in time: a lock never released fails the test instead of hanging it."""
    return list(await asyncio.wait_for(asyncio.gather(*awaitables), AT_ONCE_SECONDS))


async def warm(api: AsyncClient, world: RightsWorld, *names: str) -> None:
    """Use each key once first: a key's first use records it, which would serialize its requests by itself."""
    for name in names:
        assert (await api.get(f"{V1}/users/me", headers=bearer(world.keys[name]))).status_code == 200


def grant_url(org_id: uuid.UUID) -> str:
    return f"{V1}/organizations/{org_id}/grants/CAD"


async def check_grant_invariants(sessions: async_sessionmaker[AsyncSession]) -> list[Grant]:
    """used + live delegated <= quota on every live grant; no live grant below a withdrawn one."""
    async with sessions() as session:
        grants = list((await session.scalars(select(Grant))).all())
        ordered = dict(
            (
                await session.execute(
                    select(Order.grant_id, func.sum(Order.quantity))
                    .where(Order.grant_id.is_not(None))
                    .group_by(Order.grant_id)
                )
            ).all()
        )
    by_id = {grant.id: grant for grant in grants}
    for grant in grants:
        children = [g for g in grants if g.parent_grant_id == grant.id and g.withdrawn_at is None]
        if grant.withdrawn_at is None and grant.quota is not None:
            delegated = sum(child.quota or 0 for child in children)
            assert grant.quota_used + delegated <= grant.quota, (grant.organization_id, grant.quota_used, delegated)
            assert all(child.quota is not None for child in children)
        if grant.withdrawn_at is not None:
            assert children == [], "a live grant hangs below a withdrawn one"
        if grant.parent_grant_id is not None and grant.withdrawn_at is None:
            assert by_id[grant.parent_grant_id].withdrawn_at is None
        # Nothing accepted is lost or counted twice: every reserved unit belongs to a stored order.
        assert grant.quota_used == ordered.get(grant.id, 0), grant.organization_id
    return grants


async def test_parallel_delegations_never_overdraw_the_delegating_grant(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    async with sessions() as session:  # R1: 100, minus 15 delegated to C1 and C2, minus 75 "used": 10 left
        await session.execute(update(Grant).where(Grant.id == w.grants["R1"]).values(quota_used=75))
        session.add(
            Order(
                organization_id=w.orgs["R1"],
                product_id=w.product_id,
                quantity=75,
                allocation="organization",
                visibility="all_members",
                status="fulfilled",
                grant_id=w.grants["R1"],
            )
        )
        await session.commit()
    targets = [await new_org(api, w, "R1", "customer", f"N{i}") for i in range(10)]
    await warm(api, w, "reseller_admin")
    reseller = bearer(w.keys["reseller_admin"])
    responses = await at_once(
        *(api.put(grant_url(t), json={"permissions": ["create"], "quota": 10}, headers=reseller) for t in targets)
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 403: 9}, [r.text for r in responses]
    assert {r.json()["errors"][0]["field"] for r in responses if r.status_code == 403} == {"quota"}
    remaining = (await api.get(grant_url(w.orgs["R1"]), headers=reseller)).json()["quota_remaining"]
    assert remaining == 0
    await check_grant_invariants(sessions)
    # The one accepted: its 10 licenses can be ordered, and not one more.
    winner = next(t for t, r in zip(targets, responses, strict=True) if r.status_code == 201)
    body = {"organization_id": str(winner), "product": "PRO-CAD", "quantity": 10}
    first = await api.post(f"{V1}/orders", json=body, headers={**reseller, "Idempotency-Key": "a"})
    assert first.status_code in ACCEPTED, first.text
    again = await api.post(f"{V1}/orders", json={**body, "quantity": 1}, headers={**reseller, "Idempotency-Key": "b"})
    assert again.status_code == 403
    await check_grant_invariants(sessions)


async def test_concurrent_creates_of_one_grant_make_it_once(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    await warm(api, w, "reseller_admin", "vendor_admin")
    for who in ("reseller_admin", "vendor_admin"):  # delegated from R1; a vendor's root grant
        target = await new_org(api, w, "R1", "customer", f"Same-{who}")
        body = {"permissions": ["allocate", "create"], "quota": 3, "delegable": False}
        responses = await at_once(
            *(api.put(grant_url(target), json=body, headers=bearer(w.keys[who])) for _ in range(10))
        )
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 9}, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        async with sessions() as session:
            rows = (await session.scalars(select(Grant).where(Grant.organization_id == target))).all()
            events = (
                await session.scalars(select(GrantEvent.action).where(GrantEvent.organization_id == target))
            ).all()
        assert len(rows) == 1
        assert Counter(events) == {"granted": 1, "changed": 9}
    await check_grant_invariants(sessions)


async def test_huge_quotas_are_refused_naming_the_field(api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    vendor = bearer(w.keys["vendor_admin"])
    for quota in (2**63, 2**31, -(2**63), 10**30):
        response = await api.put(
            grant_url(w.orgs["R2"]), json={"permissions": ["create"], "quota": quota}, headers=vendor
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "quota"
    largest = await api.put(
        grant_url(w.orgs["R2"]), json={"permissions": ["create"], "quota": 2**31 - 1}, headers=vendor
    )
    assert largest.status_code == 200, largest.text
    assert largest.json()["quota_remaining"] == 2**31 - 1


@dataclass
class Op:
    kind: str
    method: str
    url: str
    who: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    start: float = 0.0
    end: float = 0.0
    response: Response | None = None


async def test_fifty_mixed_writes_on_one_grant_chain_keep_every_invariant(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    rng = random.Random(20261201)
    customers = [await new_org(api, w, "R1", "customer", f"M{i}") for i in range(6)]
    groups = [await new_org(api, w, "C1", "group", f"H{i}") for i in range(4)]
    # M0 and H0 hold grants before the race and are withdrawn in it; nothing grants them again.
    for org, who, quota in ((customers[0], "reseller_admin", 10), (groups[0], "customer_admin", 3)):
        given = await api.put(
            grant_url(org), json={"permissions": ["create"], "quota": quota}, headers=bearer(w.keys[who])
        )
        assert given.status_code == 201, given.text
    await warm(api, w, "reseller_admin", "customer_admin", "sibling_admin", "vendor_admin")
    ops: list[Op] = []
    for org in customers[1:]:  # delegations from R1, each twice with another quota
        for _ in range(2):
            body = {"permissions": ["create"], "quota": rng.randint(5, 30)}
            ops.append(Op("delegate", "PUT", grant_url(org), "reseller_admin", body))
    for org in groups[1:]:  # delegations from C1
        body = {"permissions": ["create"], "quota": rng.randint(1, 4)}
        ops.append(Op("delegate", "PUT", grant_url(org), "customer_admin", body))
    for quota in (4, 6, 8):  # narrowing C1, which delegates to the groups
        body = {"permissions": ["allocate", "create"], "quota": quota, "delegable": True}
        ops.append(Op("narrow", "PUT", grant_url(w.orgs["C1"]), "reseller_admin", body))
    for quota in (2, 4):
        body = {"permissions": ["allocate", "create"], "quota": quota}
        ops.append(Op("narrow", "PUT", grant_url(w.orgs["C2"]), "reseller_admin", body))
    body = {"permissions": ["allocate", "cancel", "create", "revoke"], "quota": 80, "delegable": True}
    ops.append(Op("narrow", "PUT", grant_url(w.orgs["R1"]), "vendor_admin", body))
    for org, who in ((w.orgs["C2"], "reseller_admin"), (customers[0], "reseller_admin"), (groups[0], "customer_admin")):
        ops.append(Op("withdraw", "DELETE", grant_url(org), who))
    targets = [(w.orgs["C1"], "customer_admin"), (w.orgs["C2"], "sibling_admin"), (w.orgs["R1"], "reseller_admin")]
    targets += [(c, "reseller_admin") for c in customers] + [(g, "customer_admin") for g in groups]
    targets += [(customers[0], "reseller_admin"), (groups[0], "customer_admin")] * 3  # the withdrawn ones, often
    while len(ops) < 50:
        org, who = rng.choice(targets)
        body = {"organization_id": str(org), "product": "PRO-CAD", "quantity": rng.randint(1, 4)}
        ops.append(Op("order", "POST", f"{V1}/orders", who, body, {"Idempotency-Key": str(uuid.uuid4())}))
    rng.shuffle(ops)
    delays = [rng.uniform(0, 0.4) for _ in ops]

    async def run(op: Op, delay: float) -> None:
        await asyncio.sleep(delay)
        op.start = time.monotonic()
        headers = {**bearer(w.keys[op.who]), **(op.headers or {})}
        op.response = await api.request(op.method, op.url, json=op.body, headers=headers)
        op.end = time.monotonic()

    await at_once(*(run(op, delay) for op, delay in zip(ops, delays, strict=True)))
    statuses = Counter((op.kind, op.response.status_code if op.response else 0) for op in ops)
    assert all(status in {200, 201, 204, 403, 409, 422, 503} for _kind, status in statuses), statuses
    assert statuses[("withdraw", 204)] == 3, statuses
    grants = await check_grant_invariants(sessions)
    by_id = {grant.id: grant for grant in grants}
    async with sessions() as session:
        stored = {
            o.idempotency_key: o
            for o in (await session.scalars(select(Order).where(Order.idempotency_key.is_not(None))))
        }
    assert sum(status in ACCEPTED for (kind, status) in statuses.elements() if kind == "order") == len(stored)
    withdrawn_at = {op.url: op.end for op in ops if op.kind == "withdraw"}
    regrants = [op for op in ops if op.kind != "withdraw" and op.response is not None and op.response.status_code < 300]
    checked = 0
    for op in ops:
        order = stored.get((op.headers or {}).get("Idempotency-Key"))
        if op.kind != "order" or order is None or order.grant_id is None:
            continue
        link: Grant | None = by_id[order.grant_id]
        while link is not None:  # the grant used and every grant it came from
            url = grant_url(link.organization_id)
            if url in withdrawn_at and op.start > withdrawn_at[url]:
                # Sent after the withdrawal answered: only a new grant in between could have allowed it.
                assert any(r.url == url and r.start < op.end for r in regrants), (op.body, url)
            checked += 1
            link = by_id.get(link.parent_grant_id) if link.parent_grant_id else None
    assert checked > 0
