"""Changing subscriptions through the API: seats for the next renewal (with quota), revocations (of subscriptions
and of licenses), ERP terms, and decisions on waiting steps. Revocations start their workflow on the dev server;
no worker runs it here.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import License, Subscription, SubscriptionTerm, utcnow
from tests.api.subscriptions import (
    SUBSCRIPTIONS,
    Made,
    add_subscription_products,
    give_permissions,
    make_subscription,
)
from tests.api.test_orders_api import quota_used
from tests.billing_lines import assert_lines_follow_terms
from tests.conftest import RightsWorld, bearer


@pytest.fixture
async def products(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> None:
    await add_subscription_products(sessions, rights_world)
    await give_permissions(sessions, rights_world, "C1", ["allocate", "cancel", "create", "revoke"])


async def _patch(api: AsyncClient, w: RightsWorld, made: Made, who: str, body: object) -> Response:
    return await api.patch(f"{SUBSCRIPTIONS}/{made.subscription_id}", json=body, headers=bearer(w.keys[who]))


@pytest.mark.usefixtures("products")
async def test_seats_change_at_the_next_renewal_and_more_of_them_hold_quota(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")  # C1's quota: 10
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    admin = bearer(w.keys["customer_admin"])
    assert await quota_used(sessions, w.grants["C1"]) == 2
    too_many = await api.patch(path, json={"quantity": 11}, headers=admin)
    assert too_many.status_code == 403, too_many.text
    assert too_many.json()["code"] == "quota-exceeded"
    assert [issue["field"] for issue in too_many.json()["errors"]] == ["quantity"]
    more = await api.patch(path, json={"quantity": 5}, headers=admin)
    assert more.status_code == 200, more.text
    assert (more.json()["quantity"], more.json()["next_quantity"]) == (2, 5)
    assert await quota_used(sessions, w.grants["C1"]) == 5
    fewer = await api.patch(path, json={"quantity": 3}, headers=admin)
    assert fewer.status_code == 200, fewer.text
    assert fewer.json()["next_quantity"] == 3
    assert await quota_used(sessions, w.grants["C1"]) == 3
    back = await api.patch(path, json={"quantity": 2}, headers=admin)
    assert back.json()["next_quantity"] is None
    assert await quota_used(sessions, w.grants["C1"]) == 2
    actions = [e["action"] for e in (await api.get(path, headers=admin)).json()["events"]]
    assert actions == ["created", "seats_changed", "seats_changed", "seats_changed"]

    # Fewer seats need `cancel`, more need `create`: C1's grant without `cancel` may add but not remove.
    await give_permissions(sessions, w, "C1", ["allocate", "create"])
    assert (await api.patch(path, json={"quantity": 4}, headers=admin)).status_code == 200
    refused = await api.patch(path, json={"quantity": 1}, headers=admin)
    assert refused.status_code == 403, refused.text
    assert "cancel" in refused.json()["detail"]
    for who, expected in [("customer_member", 404), ("sibling_admin", 404), ("foreign_admin", 404)]:
        response = await api.patch(path, json={"quantity": 3}, headers=bearer(w.keys[who]))
        assert response.status_code == expected, who
    for body, field in [
        ({"quantity": 0}, "quantity"),
        ({"quantity": 10_001}, "quantity"),
        ({"quantity": "3"}, "quantity"),
        ({}, "quantity"),
        ({"quantity": 3, "price": "1"}, "price"),
    ]:
        response = await api.patch(path, json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert field in [issue["field"] for issue in response.json()["errors"]], response.json()


@pytest.mark.usefixtures("products")
async def test_a_cancelled_or_ended_subscription_keeps_its_seats(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    admin = bearer(w.keys["customer_admin"])
    cancelled = await orders_api.post(f"{SUBSCRIPTIONS}/{made.subscription_id}/cancel", headers=admin)
    assert cancelled.status_code == 202, cancelled.text
    async with sessions() as session:  # the cancellation workflow's cancel step, as it would apply it
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
        subscription.status = "non_renewing"
        await session.commit()
    refused = await orders_api.patch(f"{SUBSCRIPTIONS}/{made.subscription_id}", json={"quantity": 3}, headers=admin)
    assert refused.status_code == 409
    assert refused.json()["code"] == "subscription-not-renewing"


@pytest.mark.usefixtures("products")
async def test_revocations_start_their_workflow_and_a_subscription_license_names_its_subscription(
    orders_api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    admin = bearer(w.keys["customer_admin"])
    alone = await orders_api.post(f"/api/v1/licenses/{made.license_ids[0]}/revoke", headers=admin)
    assert alone.status_code == 409, alone.text
    assert alone.json()["code"] == "license-in-subscription"
    assert str(made.subscription_id) in alone.json()["detail"]

    revoked = await orders_api.post(
        f"{SUBSCRIPTIONS}/{made.subscription_id}/revoke", json={"reason": "contract ended"}, headers=admin
    )
    assert revoked.status_code == 202, revoked.text
    assert revoked.json() == {"workflow_id": f"revocation-{made.subscription_id}", "status": "revocation_started"}
    described = await dev_env.client.get_workflow_handle(revoked.json()["workflow_id"]).describe()
    assert described.workflow_type == "RevocationWorkflow"

    # A perpetual license (no subscription) is revoked alone; the rights world's C1 licenses are perpetual.
    perpetual = w.licenses["own"]
    for who, expected in [("customer_member", 403), ("sibling_admin", 404), ("foreign_admin", 404)]:
        response = await orders_api.post(f"/api/v1/licenses/{perpetual}/revoke", headers=bearer(w.keys[who]))
        assert response.status_code == expected, (who, response.text)
    started = await orders_api.post(f"/api/v1/licenses/{perpetual}/revoke", headers=admin)
    assert started.status_code == 202, started.text
    assert started.json()["workflow_id"] == f"revocation-{perpetual}"
    async with sessions() as session:
        license = await session.get(License, perpetual)
        assert license is not None
        license.status = "revoked"
        await session.commit()
    again = await orders_api.post(f"/api/v1/licenses/{perpetual}/revoke", headers=admin)
    assert again.status_code == 409
    assert again.json()["code"] == "already-revoked"
    missing = await orders_api.post(f"/api/v1/licenses/{uuid.uuid4()}/revoke", headers=admin)
    assert missing.status_code == 404


@pytest.mark.usefixtures("products")
async def test_revoking_needs_the_revoke_permission(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    sibling = await make_subscription(sessions, w, "C2", grant="C2", requester="sibling_admin")
    for who in ("sibling_admin", "reseller_admin"):  # C2's own grant decides, and lacks `revoke`
        response = await api.post(f"{SUBSCRIPTIONS}/{sibling.subscription_id}/revoke", headers=bearer(w.keys[who]))
        assert response.status_code == 403, (who, response.text)
    # Temporal is unreachable for `api`: checked and allowed, the start itself is the documented 503.
    down = await api.post(f"{SUBSCRIPTIONS}/{sibling.subscription_id}/revoke", headers=bearer(w.keys["vendor_admin"]))
    assert down.status_code == 503, down.text
    assert down.json()["code"] == "workflow-not-started"


@pytest.mark.usefixtures("products")
async def test_decisions_need_something_waiting_and_a_person(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    admin = bearer(w.keys["customer_admin"])
    none = await orders_api.post(f"{path}/cancellation/approve", headers=admin)
    assert none.status_code == 409
    assert none.json()["code"] == "not-waiting"
    for route in ("revocation/approve", "revocation/reject"):
        finished = await orders_api.post(f"{path}/{route}", json={"comment": "ok"}, headers=admin)
        assert finished.status_code == 409, finished.text  # no revocation workflow: nothing waits
    foreign = await orders_api.post(f"{path}/revocation/approve", headers=bearer(w.keys["foreign_admin"]))
    assert foreign.status_code == 404
    licensed = await orders_api.post(f"/api/v1/licenses/{w.licenses['own']}/revocation/reject", headers=admin)
    assert licensed.status_code == 409


# --- ERP-managed subscriptions --------------------------------------------------------------------------


async def _term(api: AsyncClient, w: RightsWorld, made: Made, who: str, valid_through: date, ref: str) -> Response:
    return await api.post(
        f"{SUBSCRIPTIONS}/{made.subscription_id}/terms",
        json={"valid_through": valid_through.isoformat(), "external_ref": ref},
        headers=bearer(w.keys[who]),
    )


@pytest.mark.usefixtures("products")
async def test_the_erp_extends_once_per_reference_and_the_licenses_follow(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, product="SUB-CAD-ERP")
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    shown = (await api.get(path, headers=bearer(w.keys["reseller_admin"]))).json()
    assert shown["workflow_id"] is None
    first = shown["current_term"]
    later = date.fromisoformat(first["valid_through"]) + timedelta(days=180)

    extended = await _term(api, w, made, "reseller_admin", later, "SO-1/1")
    assert extended.status_code == 201, extended.text
    term = extended.json()
    assert (term["term_no"], term["kind"], term["external_ref"]) == (2, "erp", "SO-1/1")
    assert term["first_day"] == (date.fromisoformat(first["valid_through"]) + timedelta(days=1)).isoformat()
    assert term["valid_through"] == later.isoformat()
    assert term["starts_at"] == first["ends_at"]
    assert term["last_day_to_cancel"] is None
    repeated = await _term(api, w, made, "reseller_admin", later, "SO-1/1")
    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == term
    reused = await _term(api, w, made, "reseller_admin", later + timedelta(days=1), "SO-1/1")
    assert reused.status_code == 409
    assert reused.json()["code"] == "external-ref-reused"
    assert [issue["field"] for issue in reused.json()["errors"]] == ["external_ref"]
    async with sessions() as session:
        expiries = set(
            (await session.scalars(select(License.expires_at).where(License.order_id == made.order_id))).all()
        )
    assert {expiry.isoformat() for expiry in expiries if expiry} == {term["ends_at"].replace("Z", "+00:00")}

    # An earlier date than the latest term's last day ends that term early.
    shorter = later - timedelta(days=30)
    ended = await _term(api, w, made, "vendor_admin", shorter, "SO-1/2")
    assert ended.status_code == 201, ended.text
    assert (ended.json()["term_no"], ended.json()["valid_through"]) == (2, shorter.isoformat())
    shown = (await api.get(path, headers=bearer(w.keys["reseller_admin"]))).json()
    assert shown["current_term"]["valid_through"] == shorter.isoformat()
    assert [e["action"] for e in shown["events"]] == ["created", "erp_term", "erp_ended_early"]
    assert await assert_lines_follow_terms(sessions) >= 2  # the ERP's term is billed as it now ends

    for valid_through, field in [
        (date.fromisoformat(term["first_day"]), "valid_through"),  # not after the latest term's first day
        (date(9999, 12, 31), "valid_through"),
    ]:
        refused = await _term(api, w, made, "reseller_admin", valid_through, f"SO-bad-{valid_through}")
        assert refused.status_code == 422, refused.text
        assert [issue["field"] for issue in refused.json()["errors"]] == [field]
    for body, field in [
        ({"valid_through": "2030-02-30", "external_ref": "x"}, "valid_through"),
        ({"valid_through": 20300101, "external_ref": "x"}, "valid_through"),
        ({"valid_through": "2030-01-01", "external_ref": ""}, "external_ref"),
        ({"valid_through": "2030-01-01"}, "external_ref"),
    ]:
        refused = await api.post(f"{path}/terms", json=body, headers=bearer(w.keys["reseller_admin"]))
        assert refused.status_code == 422, (body, refused.text)
        assert field in [issue["field"] for issue in refused.json()["errors"]]


@pytest.mark.usefixtures("products")
async def test_erp_terms_are_the_vendors_and_resellers_and_only_for_erp_subscriptions(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    erp = await make_subscription(sessions, w, product="SUB-CAD-ERP")
    next_year = utcnow().date() + timedelta(days=800)
    for who, expected in [
        ("customer_admin", 403),  # the customer's own admin is not its ERP
        ("customer_member", 404),
        ("foreign_admin", 404),
    ]:
        response = await _term(api, w, erp, who, next_year, f"ref-{who}")
        assert response.status_code == expected, (who, response.text)
    tessera = await make_subscription(sessions, w)
    refused = await _term(api, w, tessera, "vendor_admin", next_year, "ref-1")
    assert refused.status_code == 409
    assert refused.json()["code"] == "subscription-not-managed-by-erp"
    async with sessions() as session:
        rows = (
            await session.scalars(
                select(SubscriptionTerm).where(SubscriptionTerm.subscription_id == erp.subscription_id)
            )
        ).all()
    assert [row.term_no for row in rows] == [1]


@pytest.mark.usefixtures("products")
async def test_seats_asked_for_take_effect_with_the_erps_next_term(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    made = await make_subscription(sessions, w, product="SUB-CAD-ERP", quantity=2)  # under R1's grant
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    reseller = bearer(w.keys["reseller_admin"])
    assert (await api.patch(path, json={"quantity": 4}, headers=reseller)).json()["next_quantity"] == 4
    assert await quota_used(sessions, w.grants["R1"]) == 4
    latest = date.fromisoformat((await api.get(path, headers=reseller)).json()["current_term"]["valid_through"])
    extended = await _term(api, w, made, "reseller_admin", latest + timedelta(days=365), "SO-7/1")
    assert extended.status_code == 201, extended.text
    assert extended.json()["quantity"] == 4
    shown = (await api.get(path, headers=reseller)).json()
    assert (shown["quantity"], shown["next_quantity"]) == (4, None)
    async with sessions() as session:
        live = (
            await session.scalars(
                select(License.expires_at).where(License.order_id == made.order_id, License.status == "active")
            )
        ).all()
    assert len(live) == 4
    assert {expiry.isoformat() for expiry in live if expiry} == {extended.json()["ends_at"].replace("Z", "+00:00")}
    assert await quota_used(sessions, w.grants["R1"]) == 4
