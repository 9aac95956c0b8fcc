"""The catalog through the API: reads for everyone, writes for vendor admins, problems for bad input."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.conftest import bearer

GROUP = {"code": "CAD", "name": {"en": "CAD suite"}}
PRODUCT: dict[str, Any] = {
    "code": "PRO-CAD",
    "group": "CAD",
    "name": {"en": "ProCAD"},
    "kind": "trial",
    "price": {"amount": "10.50", "currency": "EUR"},
    "fields": [
        {
            "name": "trial_days",
            "label": {"en": "Days"},
            "type": "choice",
            "allowed": [5, 30, 60, 90],
            "default": 30,
        }
    ],
    "modules": [{"code": "RENDER", "name": {"en": "Rendering"}, "default": True}],
    "trial_days_field": "trial_days",
}


async def test_vendor_admin_creates_and_reads_products(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    assert (await api.post("/api/v1/product-groups", json=GROUP, headers=auth)).status_code == 201
    created = await api.post("/api/v1/products", json=PRODUCT, headers=auth)
    assert created.status_code == 201, created.text
    product = (await api.get("/api/v1/products/PRO-CAD", headers=auth)).json()
    assert product["price"] == {"amount": "10.50", "currency": "EUR"}
    assert product["fields"][0]["default"] == 30
    assert (product["trial_days_field"], product["duration"]) == ("trial_days", None)
    limited = await api.patch("/api/v1/products/PRO-CAD", json={"kind": "time_limited"}, headers=auth)
    assert limited.status_code == 422, limited.text  # a time-limited product needs its duration
    limited = await api.patch(
        "/api/v1/products/PRO-CAD",
        json={"kind": "time_limited", "trial_days_field": None, "duration": "P6M"},
        headers=auth,
    )
    assert limited.status_code == 200, limited.text
    assert limited.json()["duration"] == "P6M"
    listed = (await api.get("/api/v1/products", headers=auth)).json()
    assert [p["code"] for p in listed["items"]] == ["PRO-CAD"]
    assert listed["next_cursor"] is None


async def test_patch_changes_only_what_is_sent(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    await api.post("/api/v1/products", json=PRODUCT, headers=auth)
    patched = await api.patch("/api/v1/products/PRO-CAD", json={"max_activations": 3}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert patched.json()["max_activations"] == 3
    assert patched.json()["modules"] == PRODUCT["modules"]


async def test_patch_that_breaks_the_product_is_refused(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    await api.post("/api/v1/products", json=PRODUCT, headers=auth)
    response = await api.patch("/api/v1/products/PRO-CAD", json={"kind": "subscription"}, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/api/v1/products/PRO-CAD", headers=auth)).json()["kind"] == "trial"


async def test_unknown_fields_are_rejected_with_their_name(api: AsyncClient, vendor_admin_key: str) -> None:
    response = await api.post(
        "/api/v1/product-groups", json={**GROUP, "colour": "red"}, headers=bearer(vendor_admin_key)
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid-input"
    assert {"field": "colour", "message": "unknown field"} in problem["errors"]


async def test_default_not_allowed_names_the_field(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    bad = {**PRODUCT, "fields": [{**PRODUCT["fields"][0], "default": 31}]}
    response = await api.post("/api/v1/products", json=bad, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "fields.0.default"


async def test_unknown_group_is_refused(api: AsyncClient, vendor_admin_key: str) -> None:
    response = await api.post("/api/v1/products", json=PRODUCT, headers=bearer(vendor_admin_key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "group"


async def test_duplicate_code_is_a_conflict(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    assert (await api.post("/api/v1/product-groups", json=GROUP, headers=auth)).status_code == 201
    response = await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


async def test_no_key_and_bad_key_are_401_problems(api: AsyncClient) -> None:
    for headers in ({}, bearer("tsk_not-a-real-key")):
        response = await api.get("/api/v1/products", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "not-authenticated"


async def test_missing_product_is_404_problem(api: AsyncClient, vendor_admin_key: str) -> None:
    response = await api.get("/api/v1/products/NOPE", headers=bearer(vendor_admin_key))
    assert response.status_code == 404
    assert response.json()["type"] == "urn:tessera:problem:not-found"


async def test_pagination_walks_every_product_once(api: AsyncClient, vendor_admin_key: str) -> None:
    auth = bearer(vendor_admin_key)
    await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    codes = [f"P{i:02d}" for i in range(7)]
    for code in codes:
        assert (await api.post("/api/v1/products", json={**PRODUCT, "code": code}, headers=auth)).status_code == 201
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/products", params=params, headers=auth)).json()
        seen += [p["code"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes


async def test_limit_above_200_is_refused(api: AsyncClient, vendor_admin_key: str) -> None:
    response = await api.get("/api/v1/products", params={"limit": 201}, headers=bearer(vendor_admin_key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.limit"


async def test_openapi_is_served(api: AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    assert "/api/v1/products/{code}" in (await api.get("/openapi.json")).json()["paths"]


async def test_a_value_of_the_wrong_type_is_one_error_at_the_key_written(
    api: AsyncClient, vendor_admin_key: str
) -> None:
    auth = bearer(vendor_admin_key)
    await api.post("/api/v1/product-groups", json=GROUP, headers=auth)
    bad = {**PRODUCT, "fields": [{**PRODUCT["fields"][0], "default": [1]}]}
    response = await api.post("/api/v1/products", json=bad, headers=auth)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["fields.0.default"]
