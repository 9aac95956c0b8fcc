"""Orders through the API: acceptance and its workflow, validation naming the field, idempotency, acting rule, quota.

Workflow starts go to the real dev server (`orders_api`); nothing runs them unless a test starts a worker.
"""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.fields import FieldSpec
from tessera.models import Grant, Order, Product
from tests.conftest import RightsWorld, bearer

ORDERS = "/api/v1/orders"
FIELDS = [
    {"name": "trial_days", "label": {"en": "Trial days"}, "type": "choice", "allowed": [5, 30, 60, 90], "default": 30},
    {"name": "seats", "label": {"en": "Seats"}, "type": "int", "min": 1, "max": 100, "required": True},
    {"name": "start", "label": {"en": "Start"}, "type": "date"},
    {"name": "note", "label": {"en": "Note"}, "type": "string"},
    {"name": "support", "label": {"en": "Support"}, "type": "bool", "default": False},
]
MODULES = [
    {"code": "BASE", "name": {"en": "Base"}, "default": True},
    {"code": "EXTRA", "name": {"en": "Extra"}, "default": False},
]


async def add_field_product(sessions: async_sessionmaker[AsyncSession], world: RightsWorld) -> None:
    """FIELDS-CAD: a product of the CAD group with one field of each type and two modules."""
    async with sessions() as session:
        session.add(
            Product(
                code="FIELDS-CAD",
                group_id=world.group_id,
                name={"en": "Fields CAD"},
                kind="perpetual",
                container_kinds=["software"],
                fields=[FieldSpec.model_validate(spec).model_dump(mode="json") for spec in FIELDS],
                modules=MODULES,
            )
        )
        await session.commit()


def order_body(world: RightsWorld, org: str = "C1", **changes: Any) -> dict[str, Any]:
    return {"organization_id": str(world.orgs[org]), "product": "PRO-CAD", "quantity": 1, **changes}


async def post_order(
    client: AsyncClient, world: RightsWorld, who: str, body: dict[str, Any], key: str | None = None
) -> Response:
    headers = {**bearer(world.keys[who]), "Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post(ORDERS, json=body, headers=headers)


async def quota_used(sessions: async_sessionmaker[AsyncSession], grant_id: uuid.UUID) -> int:
    async with sessions() as session:
        grant = await session.get(Grant, grant_id)
        assert grant is not None
        return grant.quota_used


async def test_an_accepted_order_starts_its_workflow_with_ids_and_words(
    orders_api: AsyncClient,
    rights_world: RightsWorld,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    response = await post_order(orders_api, w, "customer_admin", order_body(w, quantity=3))
    assert response.status_code == 202, response.text
    order = response.json()
    assert order["status"] == "accepted"
    assert order["workflow_id"] == f"order-{order['id']}"
    assert order["workflow_started"] is True
    assert order["allocation"] == "requester"
    assert order["visibility"] == "all_members"
    assert len(order["process_version"]) == 64
    assert await quota_used(sessions, w.grants["C1"]) == 3

    described = await dev_env.client.get_workflow_handle(order["workflow_id"]).describe()
    attributes = {key.name: value for key, value in described.typed_search_attributes}
    assert attributes == {
        "TesseraCustomer": str(w.orgs["C1"]),
        "TesseraProduct": "PRO-CAD",
        "TesseraStatus": "accepted",
        "TesseraReseller": str(w.orgs["R1"]),
    }
    # Ids only: memos and summaries are stored unencrypted, like search attributes.
    summary = f"3 × PRO-CAD for organization {w.orgs['C1']}, requested by user {w.users['customer_admin']}"  # noqa: RUF001
    assert await described.memo_value("summary") == summary
    assert await described.static_summary() == summary

    shown = await orders_api.get(f"{ORDERS}/{order['id']}", headers=bearer(w.keys["customer_member"]))
    assert shown.status_code == 200, shown.text
    assert shown.json()["trail"] == []
    assert shown.json()["licenses"] == []
    listed = await orders_api.get(ORDERS, params={"status": "accepted"}, headers=bearer(w.keys["reseller_admin"]))
    assert [item["id"] for item in listed.json()["items"]] == [order["id"]]
    foreign = await orders_api.get(f"{ORDERS}/{order['id']}", headers=bearer(w.keys["foreign_admin"]))
    assert foreign.status_code == 404


async def test_field_defaults_and_default_modules_are_filled_in(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    await add_field_product(sessions, w)
    body = order_body(w, product="FIELDS-CAD", fields={"seats": 5, "start": "2030-02-01"})
    response = await post_order(orders_api, w, "customer_admin", body)
    assert response.status_code == 202, response.text
    assert response.json()["fields"] == {"trial_days": 30, "seats": 5, "start": "2030-02-01", "support": False}
    assert response.json()["modules"] == ["BASE"]
    chosen = order_body(w, product="FIELDS-CAD", fields={"seats": 1, "trial_days": 90}, modules=["EXTRA"])
    response = await post_order(orders_api, w, "customer_admin", chosen)
    assert response.status_code == 202, response.text
    assert response.json()["fields"]["trial_days"] == 90
    assert response.json()["modules"] == ["EXTRA"]


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [  # changes to a valid FIELDS-CAD order, field named
    ({"fields": {"seats": 1, "colour": "red"}}, "fields.colour"),
    ({"fields": {"seats": 1, "trial_days": 7}}, "fields.trial_days"),
    ({"fields": {"seats": 1, "trial_days": "30"}}, "fields.trial_days"),
    ({"fields": {}}, "fields.seats"),
    ({"fields": {"seats": 101}}, "fields.seats"),
    ({"fields": {"seats": 0}}, "fields.seats"),
    ({"fields": {"seats": "3"}}, "fields.seats"),
    ({"fields": {"seats": True}}, "fields.seats"),
    ({"fields": {"seats": 1, "start": "2030-13-01"}}, "fields.start"),
    ({"fields": {"seats": 1, "support": "yes"}}, "fields.support"),
    ({"fields": {"seats": 1, "note": 5}}, "fields.note"),
    ({"fields": {"seats": 1, "note": 1.5}}, "fields.note"),
    ({"modules": ["BASE", "NOPE"]}, "modules.1"),
    ({"modules": ["BASE", "BASE"]}, "modules.1"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": 10_001}, "quantity"),
    ({"quantity": "3"}, "quantity"),
    ({"allocation": "everyone"}, "allocation"),
    ({"allocation": "user"}, "user_id"),
    ({"allocation": "organization", "user_id": str(uuid.uuid4())}, "user_id"),
    ({"visibility": "public"}, "visibility"),
    ({"external_ref": "x" * 201}, "external_ref"),
    ({"external_ref": ""}, "external_ref"),
    ({"product": "NOPE"}, "product"),
    ({"organization_id": "not-a-uuid"}, "organization_id"),
    ({"organization_id": str(uuid.uuid4())}, "organization_id"),
    ({"colour": "red"}, "colour"),
]


async def test_each_invalid_input_is_refused_naming_its_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    await add_field_product(sessions, w)
    valid = order_body(w, product="FIELDS-CAD", fields={"seats": 1})
    cases = [
        *BAD_INPUTS,
        # A user outside the organization (a member of its sibling), and an organization out of reach.
        ({"allocation": "user", "user_id": str(w.users["m_C2"])}, "user_id"),
        ({"organization_id": str(w.orgs["C3"])}, "organization_id"),
    ]
    for changes, field in cases:
        response = await post_order(api, w, "customer_admin", {**valid, **changes})
        assert response.status_code == 422, (changes, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in response.json()["errors"]] == [field], (changes, response.json())
    missing_key = await api.post(ORDERS, json=valid, headers=bearer(w.keys["customer_admin"]))
    assert missing_key.status_code == 422
    assert missing_key.json()["errors"][0]["field"] == "header.Idempotency-Key"
    async with sessions() as session:
        assert (await session.scalars(select(Order.id).where(Order.idempotency_key.is_not(None)))).all() == []


async def test_a_user_of_a_group_below_may_receive_the_tickets(
    orders_api: AsyncClient, rights_world: RightsWorld
) -> None:
    w = rights_world
    body = order_body(w, allocation="user", user_id=str(w.users["m_G1"]), visibility="admins_only")
    response = await post_order(orders_api, w, "customer_admin", body)
    assert response.status_code == 202, response.text
    assert response.json()["user_id"] == str(w.users["m_G1"])
    assert response.json()["visibility"] == "admins_only"


async def test_same_key_and_body_answer_with_the_first_order(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    body = order_body(w, quantity=2)
    first = await post_order(orders_api, w, "customer_admin", body, key="erp-1")
    again = await post_order(orders_api, w, "customer_admin", dict(reversed(body.items())), key="erp-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await quota_used(sessions, w.grants["C1"]) == 2

    other_body = await post_order(orders_api, w, "customer_admin", order_body(w, quantity=3), key="erp-1")
    assert other_body.status_code == 422
    assert other_body.json()["errors"][0]["field"] == "header.Idempotency-Key"

    # Keys are scoped to the API key that sent them: another caller's "erp-1" is another order.
    theirs = await post_order(orders_api, w, "reseller_admin", body, key="erp-1")
    assert theirs.status_code == 202
    assert theirs.json()["id"] != first.json()["id"]
    assert await quota_used(sessions, w.grants["C1"]) == 4


async def test_a_known_external_ref_answers_with_its_order(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    first = await post_order(orders_api, w, "customer_admin", order_body(w, external_ref="SO-4711/10"))
    assert first.status_code == 202, first.text
    # A retry under a new key (say, after a crash of the ERP) and by someone else within reach: the same order.
    for who in ("customer_admin", "reseller_admin"):
        again = await post_order(orders_api, w, who, order_body(w, quantity=5, external_ref="SO-4711/10"))
        assert again.status_code == 202, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["quantity"] == 1
    # Within the same reseller, someone who cannot see that order learns only that the reference is taken.
    sibling = await post_order(orders_api, w, "sibling_admin", order_body(w, "C2", external_ref="SO-4711/10"))
    assert sibling.status_code == 409
    assert sibling.json()["errors"][0]["field"] == "external_ref"
    assert str(w.orgs["C1"]) not in sibling.text
    # Another reseller's ERP has references of its own: the same one is simply its own order.
    stranger = await post_order(orders_api, w, "foreign_admin", order_body(w, "C3", external_ref="SO-4711/10"))
    assert stranger.status_code == 202, stranger.text
    assert stranger.json()["id"] != first.json()["id"]
    assert await quota_used(sessions, w.grants["C1"]) == 1


async def test_the_acting_rule_decides_who_may_order(orders_api: AsyncClient, rights_world: RightsWorld) -> None:
    w = rights_world
    cases = [
        ("customer_member", "C1", 403),  # a member sees its organization but does not act for it
        ("customer_admin", "G1", 403),  # G1's own grant covers it, and lacks `create`
        ("sibling_admin", "C1", 422),  # out of reach: an invalid reference
        ("vendor_staff", "C1", 422),
        ("reseller_admin", "C2", 202),
        ("vendor_admin", "C3", 202),
    ]
    for who, org, status in cases:
        response = await post_order(orders_api, w, who, order_body(w, org))
        assert response.status_code == status, (who, org, response.text)


async def test_quota_counts_what_was_delegated_onwards(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    # C1 holds 10 and delegated 1 to G1: 9 are left for C1's own orders.
    beyond = await post_order(orders_api, w, "customer_admin", order_body(w, quantity=10))
    assert beyond.status_code == 403
    assert beyond.json()["code"] == "quota-exceeded"
    assert beyond.json()["errors"][0]["field"] == "quantity"
    assert "9" in beyond.json()["detail"]
    assert (await post_order(orders_api, w, "customer_admin", order_body(w, quantity=9))).status_code == 202
    one_more = await post_order(orders_api, w, "customer_admin", order_body(w))
    assert one_more.status_code == 403
    assert await quota_used(sessions, w.grants["C1"]) == 9
    # Vendor administrators order without a grant, so without a quota.
    assert (await post_order(orders_api, w, "vendor_admin", order_body(w, quantity=50))).status_code == 202
    assert await quota_used(sessions, w.grants["C1"]) == 9
