"""Subscriptions through the API: who sees them, the list's filters and pages, the detail, cancel and uncancel.

Cancellations start their workflow on the real dev server (`orders_api`); no worker runs it here, so what the
API recorded is what the tests read.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.apikeys import create_api_key
from tessera.models import Cancellation, Subscription, SubscriptionTerm, utcnow
from tessera.subscriptions import service
from tessera.subscriptions.plans import plan_of
from tests.api.subscriptions import (
    SUBSCRIPTIONS,
    Made,
    add_subscription_products,
    give_permissions,
    make_subscription,
    move_current_term,
)
from tests.conftest import TEST_SECRET, RightsWorld, bearer


@pytest.fixture
async def made(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> Made:
    """A subscription of C1, whose grant (delegated from its reseller's) allows cancelling and revoking."""
    await add_subscription_products(sessions, rights_world)
    await give_permissions(sessions, rights_world, "C1", ["allocate", "cancel", "create", "revoke"])
    return await make_subscription(sessions, rights_world, grant="C1", requester="customer_admin")


async def test_who_sees_a_subscription(api: AsyncClient, rights_world: RightsWorld, made: Made) -> None:
    w = rights_world
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    for who in ("vendor_admin", "reseller_admin", "customer_admin"):
        shown = await api.get(path, headers=bearer(w.keys[who]))
        assert shown.status_code == 200, (who, shown.text)
        listed = await api.get(SUBSCRIPTIONS, headers=bearer(w.keys[who]))
        assert [item["id"] for item in listed.json()["items"]] == [str(made.subscription_id)], who
    # Members see their tickets, not the contract; other organizations see nothing.
    for who in ("customer_member", "subgroup_member", "reseller_member", "sibling_admin", "foreign_admin"):
        shown = await api.get(path, headers=bearer(w.keys[who]))
        assert shown.status_code == 404, (who, shown.text)
        listed = await api.get(SUBSCRIPTIONS, headers=bearer(w.keys[who]))
        assert listed.json()["items"] == [], who
    missing = await api.get(f"{SUBSCRIPTIONS}/{uuid.uuid4()}", headers=bearer(w.keys["vendor_admin"]))
    assert missing.status_code == 404


async def test_the_detail_shows_the_term_its_deadline_history_and_money_as_decimal_strings(
    api: AsyncClient, rights_world: RightsWorld, made: Made
) -> None:
    shown = await api.get(f"{SUBSCRIPTIONS}/{made.subscription_id}", headers=bearer(rights_world.keys["vendor_admin"]))
    body = shown.json()
    assert body["status"] == "active"
    assert body["product"] == "SUB-CAD"
    assert body["quantity"] == 2
    assert body["next_quantity"] is None
    assert body["unit_price"] == "990.00"
    assert body["currency"] == "EUR"
    assert body["managed_by"] == "tessera"
    assert body["reseller_id"] == str(rights_world.orgs["R1"])
    assert body["workflow_id"] == f"subscription-{made.subscription_id}"
    term = body["current_term"]
    assert term["number"] == 1
    assert term["price"] == "990.00"
    assert term["first_day"] == body["start_date"]
    assert term["last_day_to_cancel"] < term["valid_through"]
    assert term["cancel_deadline_at"] < term["ends_at"]
    assert [(row["term_no"], row["kind"], row["quantity"], row["amount"]) for row in body["terms"]] == [
        (1, "first", 2, "1980.00")
    ]
    assert [event["action"] for event in body["events"]] == ["created"]
    assert body["cancellations"] == []


async def test_the_list_filters_and_pages(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    w = rights_world
    other = await make_subscription(sessions, w, "C3", grant="R2", requester="vendor_admin")
    pending = await make_subscription(sessions, w, "G1", product="SUB-CAD-ACT", grant=None, requester="vendor_admin")
    admin = bearer(w.keys["vendor_admin"])

    async def ids(**params: str) -> list[str]:
        response = await api.get(SUBSCRIPTIONS, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    newest_first = [str(pending.subscription_id), str(other.subscription_id), str(made.subscription_id)]
    assert await ids() == newest_first
    assert await ids(status="pending") == [str(pending.subscription_id)]
    assert await ids(organization_id=str(w.orgs["C1"])) == [str(pending.subscription_id), str(made.subscription_id)]
    assert await ids(reseller_id=str(w.orgs["R2"])) == [str(other.subscription_id)]
    assert await ids(product="SUB-CAD-ACT") == [str(pending.subscription_id)]
    in_two_years = (utcnow() + timedelta(days=800)).isoformat()
    assert await ids(expiring_before=in_two_years) == [str(other.subscription_id), str(made.subscription_id)]
    assert await ids(expiring_before=utcnow().isoformat()) == []
    pages, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(SUBSCRIPTIONS, params=params, headers=admin)).json()
        pages += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == newest_first

    for params, field in [
        ({"colour": "red"}, "query.colour"),
        ({"limit": "201"}, "query.limit"),
        ({"status": "sleeping"}, "query.status"),
        ({"expiring_before": "2030-01-01T00:00:00"}, "query.expiring_before"),  # no offset: ambiguous
        ({"cursor": "nonsense"}, "query.cursor"),
    ]:
        refused = await api.get(SUBSCRIPTIONS, params=params, headers=admin)
        assert refused.status_code == 422, (params, refused.text)
        assert field in [issue["field"] for issue in refused.json()["errors"]], refused.json()
    orders_cursor = (await api.get("/api/v1/orders", params={"limit": "1"}, headers=admin)).json()["next_cursor"]
    if orders_cursor is not None:
        refused = await api.get(SUBSCRIPTIONS, params={"cursor": orders_cursor}, headers=admin)
        assert refused.status_code == 422


async def _cancel(
    client: AsyncClient, w: RightsWorld, made: Made, who: str = "customer_admin", **body: str
) -> Response:
    return await client.post(f"{SUBSCRIPTIONS}/{made.subscription_id}/cancel", json=body, headers=bearer(w.keys[who]))


async def test_cancel_before_the_deadline_ends_with_the_current_term_and_starts_its_workflow(
    orders_api: AsyncClient, rights_world: RightsWorld, made: Made, dev_env: WorkflowEnvironment
) -> None:
    w = rights_world
    before = utcnow()
    response = await _cancel(orders_api, w, made, reason="moving to another product")
    assert response.status_code == 202, response.text
    body = response.json()
    term = body["subscription"]["current_term"]
    cancellation = body["cancellation"]
    assert cancellation["n"] == 1
    assert cancellation["status"] == "requested"
    assert cancellation["effective_term_no"] == 1
    assert cancellation["reason"] == "moving to another product"
    assert cancellation["workflow_id"] == f"cancellation-{made.subscription_id}-1"
    assert before <= datetime.fromisoformat(cancellation["received_at"]) <= utcnow()
    assert body["effective_end_at"] == cancellation["effective_end_at"] == term["ends_at"]
    assert term["ends_at"].replace("+00:00", "Z") in body["message"]
    assert f"after {term['valid_through']} (UTC), the last day of term 1" in body["message"]
    described = await dev_env.client.get_workflow_handle(cancellation["workflow_id"]).describe()
    assert described.workflow_type == "CancellationWorkflow"

    again = await _cancel(orders_api, w, made)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "cancellation-exists"
    assert cancellation["effective_end_at"] in again.json()["detail"]


async def test_cancel_after_the_deadline_ends_with_the_next_term(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    await move_current_term(sessions, made.subscription_id, cancel_deadline_at=utcnow() - timedelta(seconds=1))
    response = await _cancel(orders_api, rights_world, made)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["cancellation"]["effective_term_no"] == 2
    current_end = body["subscription"]["current_term"]["ends_at"]
    assert body["effective_end_at"] > current_end
    async with sessions() as session:
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
        following = plan_of(subscription).term(2)
    assert datetime.fromisoformat(body["effective_end_at"]) == following.ends_at


async def test_uncancel_then_cancel_again_is_the_second_cancellation(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    w = rights_world
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    nothing = await orders_api.post(f"{path}/uncancel", headers=bearer(w.keys["customer_admin"]))
    assert nothing.status_code == 409
    assert nothing.json()["code"] == "nothing-to-uncancel"
    assert (await _cancel(orders_api, w, made)).status_code == 202
    withdrawn = await orders_api.post(f"{path}/uncancel", headers=bearer(w.keys["customer_admin"]))
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["cancellation"]["status"] == "withdrawn"
    assert withdrawn.json()["subscription"]["status"] == "active"
    assert withdrawn.json()["subscription"]["effective_end_at"] is None
    second = await _cancel(orders_api, w, made)
    assert second.status_code == 202, second.text
    assert second.json()["cancellation"]["n"] == 2
    assert second.json()["cancellation"]["workflow_id"] == f"cancellation-{made.subscription_id}-2"
    shown = (await orders_api.get(path, headers=bearer(w.keys["customer_admin"]))).json()
    assert [(c["n"], c["status"]) for c in shown["cancellations"]] == [(1, "withdrawn"), (2, "requested")]
    assert [e["action"] for e in shown["events"]] == ["created", "cancel_requested", "uncancelled", "cancel_requested"]

    async with sessions() as session:  # the effective end has passed: too late
        cancellation = await session.scalar(select(Cancellation).where(Cancellation.n == 2))
        assert cancellation is not None
        cancellation.effective_end_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    late = await orders_api.post(f"{path}/uncancel", headers=bearer(w.keys["customer_admin"]))
    assert late.status_code == 409
    assert late.json()["code"] == "uncancel-too-late"


async def test_a_cancellation_received_in_time_withdraws_a_commitment_written_meanwhile(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    """The workflow committed at the deadline while the request, received just before it, waited."""
    async with sessions() as session:
        assert await service.commit(session, made.subscription_id, 1, utcnow())
        await session.commit()
    response = await _cancel(orders_api, rights_world, made)
    assert response.status_code == 202, response.text
    assert response.json()["cancellation"]["effective_term_no"] == 1
    async with sessions() as session:
        terms = (
            await session.scalars(
                select(SubscriptionTerm.term_no).where(SubscriptionTerm.subscription_id == made.subscription_id)
            )
        ).all()
    assert list(terms) == [1]
    shown = await orders_api.get(
        f"{SUBSCRIPTIONS}/{made.subscription_id}", headers=bearer(rights_world.keys["customer_admin"])
    )
    actions = [e["action"] for e in shown.json()["events"]]
    # History is in time order: the request was received before the withdrawal it caused.
    assert actions == ["created", "committed", "cancel_requested", "commitment_withdrawn"]


async def test_who_may_cancel_and_what_cannot_be_cancelled(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    w = rights_world
    for who, expected in [
        ("customer_member", 404),
        ("sibling_admin", 404),
        ("foreign_admin", 404),
    ]:
        response = await _cancel(orders_api, w, made, who)
        assert response.status_code == expected, (who, response.text)
    # C2's own grant, the nearest to it, lacks `cancel`: neither its admin nor the reseller's may cancel there.
    sibling = await make_subscription(sessions, w, "C2", grant="C2", requester="sibling_admin")
    for who in ("sibling_admin", "reseller_admin"):
        response = await _cancel(orders_api, w, sibling, who)
        assert response.status_code == 403, (who, response.text)
        assert "cancel" in response.json()["detail"]
    for body, field in [({"reason": "x" * 2001}, "reason"), ({"when": "now"}, "when")]:
        refused = await orders_api.post(
            f"{SUBSCRIPTIONS}/{made.subscription_id}/cancel", json=body, headers=bearer(w.keys["customer_admin"])
        )
        assert refused.status_code == 422, refused.text
        assert field in [issue["field"] for issue in refused.json()["errors"]]
    pending = await make_subscription(sessions, w, product="SUB-CAD-ACT")
    erp = await make_subscription(sessions, w, product="SUB-CAD-ERP")
    for other, code in [(pending, "subscription-pending"), (erp, "subscription-managed-by-erp")]:
        refused = await _cancel(orders_api, w, other)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == code
    async with sessions() as session:
        await service.revoke(session, made.subscription_id, utcnow())
        await session.commit()
    ended = await _cancel(orders_api, w, made, "vendor_admin")
    assert ended.status_code == 409
    assert ended.json()["code"] == "subscription-ended"


async def test_a_service_account_cancels_within_its_rights_but_cannot_decide(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession], made: Made
) -> None:
    async with sessions() as session:
        _key, token = await create_api_key(session, TEST_SECRET, name="erp", organization_id=rights_world.orgs["C1"])
        await session.commit()
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    cancelled = await orders_api.post(f"{path}/cancel", headers=bearer(token))
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["cancellation"]["requested_by_user_id"] is None
    decided = await orders_api.post(f"{path}/cancellation/approve", headers=bearer(token))
    assert decided.status_code == 403
    assert "service account" in decided.json()["detail"]


async def test_a_cancellation_received_while_temporal_is_down_counts_and_its_repeat_starts_the_workflow(
    api: AsyncClient,
    orders_api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    made: Made,
    dev_env: WorkflowEnvironment,
) -> None:
    down = await _cancel(api, rights_world, made)
    assert down.status_code == 503, down.text
    assert down.json()["code"] == "workflow-not-started"
    async with sessions() as session:
        recorded = await session.scalar(
            select(Cancellation).where(Cancellation.subscription_id == made.subscription_id)
        )
    assert recorded is not None
    assert recorded.status == "requested"
    repeated = await _cancel(orders_api, rights_world, made)
    assert repeated.status_code == 409, repeated.text
    assert repeated.json()["code"] == "cancellation-exists"
    described = await dev_env.client.get_workflow_handle(recorded.workflow_id).describe()
    assert described.workflow_type == "CancellationWorkflow"
