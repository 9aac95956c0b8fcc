"""The wizard and the order pages offer only what the rights service allows and refuse what was tampered with."""

from __future__ import annotations

import re

from httpx import AsyncClient
from sqlalchemy import select

from tessera.models import Product, ProductGroup
from tests.api.portal.browser_forms import browser, csrf_of
from tests.api.portal.orders_world import (
    PRODUCT,
    Sessions,
    add_product,
    as_pairs,
    details_form,
    hidden_fields,
    orders_of,
    portal_user,
    set_locale,
    step_url,
)
from tests.conftest import RightsWorld, bearer

DATA_ID = re.compile(r'data-id="([0-9a-f-]{36})"')


async def test_foreign_and_ungranted_choices_are_refused_at_every_step(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await add_product(sessions, w)
    async with sessions() as session:
        sim = await session.scalar(select(ProductGroup).where(ProductGroup.code == "SIM"))
        assert sim is not None
        session.add(Product(code="SIM-X", group_id=sim.id, name={"en": "Sim"}, kind="perpetual", container_kinds=[]))
        await session.commit()
    await portal_user(api, sessions, w, "customer_admin")
    new = "/licenses/new"
    assert (await api.get(f"{new}?organization={w.orgs['C3']}")).status_code == 404  # another reseller's
    assert (await api.get(f"{new}?organization={w.orgs['C2']}")).status_code == 404  # a sibling customer
    assert (await api.get(f"{new}?organization=not-a-uuid")).status_code == 404
    subgroup = await api.get(f"{new}?organization={w.orgs['G1']}")  # administered, but its grant lacks create
    assert subgroup.status_code == 200
    assert "No grant lets you create licenses for this organization." in subgroup.text
    assert (await api.get(f"{new}?organization={w.orgs['G1']}&group=CAD")).status_code == 403
    assert (await api.get(f"{new}?organization={w.orgs['C1']}&group=SIM")).status_code == 403
    assert (await api.get(f"{new}?organization={w.orgs['C1']}&group=NOPE")).status_code == 403
    assert (await api.get(f"{new}?organization={w.orgs['C1']}&group=CAD&product=NOPE")).status_code == 404
    assert (await api.get(f"{new}?organization={w.orgs['C1']}&group=CAD&product=SIM-X")).status_code == 404

    token = csrf_of((await api.get(step_url(w))).text)
    for changes, status in (
        ({"organization": str(w.orgs["C3"])}, 404),
        ({"organization": "x"}, 404),
        ({"group": "SIM", "product": "SIM-X"}, 403),
        ({"product": "SIM-X"}, 404),
    ):
        for step in ("details", "create"):
            form = {**details_form(w), "csrf_token": token, "step": step, "quantity": "1", **changes}
            form.update({"allocation": "requester", "visibility": "all_members", "nonce": "n" * 20})
            refused = await api.post(new, data=form)
            assert refused.status_code == status, (changes, step, refused.text)
    assert await orders_of(sessions, w, "C3") == []
    assert await orders_of(sessions, w) == []

    async with browser(api) as member:
        await portal_user(member, sessions, w, "customer_member")
        first = await member.get(new)
        assert "You administer no organization that may create licenses." in first.text
        assert (await member.get(f"{new}?organization={w.orgs['C1']}")).status_code == 403
        forged = {**details_form(w), "csrf_token": csrf_of(first.text), "step": "create", "quantity": "1"}
        forged.update({"allocation": "requester", "visibility": "all_members", "nonce": "m" * 20})
        assert (await member.post(new, data=forged)).status_code == 403
        assert await orders_of(sessions, w) == []


async def test_wizard_forms_need_this_browsers_csrf_token(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await portal_user(api, sessions, w, "customer_admin")
    form = {**details_form(w), "step": "create", "quantity": "1", "allocation": "requester", "nonce": "n" * 20}
    form["visibility"] = "all_members"
    assert (await api.post("/licenses/new", data=form)).status_code == 403
    async with browser(api) as other:
        await portal_user(other, sessions, w, "reseller_admin")
        foreign_token = csrf_of((await other.get("/licenses/new")).text)
    assert (await api.post("/licenses/new", data={**form, "csrf_token": foreign_token})).status_code == 403
    assert await orders_of(sessions, w) == []


async def test_the_wizard_speaks_german(api: AsyncClient, rights_world: RightsWorld, sessions: Sessions) -> None:
    w = rights_world
    await add_product(sessions, w)
    await set_locale(sessions, w, "customer_admin", "de")
    await portal_user(api, sessions, w, "customer_admin")
    first = (await api.get("/licenses/new")).text
    assert '<html lang="de">' in first
    assert '<label for="f-organization">Organisation</label>' in first
    assert ">Weiter</button>" in first
    second = (await api.get(f"/licenses/new?organization={w.orgs['C1']}")).text
    assert '<label for="f-group">Produktgruppe</label>' in second
    assert "(noch 9)" in second
    fourth = (await api.get(step_url(w))).text
    assert "ProCAD mit Optionen" in fourth
    for label in ("Arbeitsplätze", "Testtage", "Wartung", "Beginnt am", "Darstellung", "Cloud-Abgleich"):
        assert label in fourth, label
    finish = await api.post("/licenses/new", data={"csrf_token": csrf_of(fourth), **details_form(w)})
    for label in ("Menge", "Zuteilen an", "Sichtbarkeit", ">Lizenz erstellen</button>"):
        assert label in finish.text, label
    assert PRODUCT in finish.text


async def test_the_order_list_shows_what_the_api_lists_and_foreign_orders_are_missing(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    for name in ("customer_admin", "sibling_admin", "reseller_admin"):
        async with browser(api) as person:
            await portal_user(person, sessions, w, name)
            listed = await person.get("/orders")
            assert listed.status_code == 200
            assert "<h1>Orders</h1>" in listed.text
            shown = set(DATA_ID.findall(listed.text))
            expected = (await api.get("/api/v1/orders", headers=bearer(w.keys[name]))).json()["items"]
            assert shown == {item["id"] for item in expected}, name
    async with browser(api) as sibling:
        await portal_user(sibling, sessions, w, "sibling_admin")
        for path in (f"/orders/{w.orders['own']}", f"/orders/{w.orders['own']}/status", "/orders/not-an-id"):
            assert (await sibling.get(path)).status_code == 404, path
        mine = await sibling.get(f"/orders/{w.orders['sibling']}")
        assert mine.status_code == 200
        assert "data-final" in mine.text


async def test_an_order_stored_while_temporal_is_away_is_kept_once_and_said_so(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await portal_user(api, sessions, w, "customer_admin")
    page = await api.get(step_url(w))
    finish = await api.post("/licenses/new", data={"csrf_token": csrf_of(page.text), **details_form(w)})
    form = as_pairs([*hidden_fields(finish.text), ("quantity", "2"), ("allocation", "organization")])
    form["visibility"] = "all_members"
    for _attempt in range(2):  # the page says to repeat; repeating finds the same order
        away = await api.post("/licenses/new", data=form)
        assert away.status_code == 503
        assert "same Idempotency-Key" in away.text
    stored = await orders_of(sessions, w)
    assert [(order.status, order.quantity) for order in stored] == [("accepted", 2)]
    shown = await api.get(f"/orders/{stored[0].id}")
    assert "its first step has not started yet" in shown.text
    assert f'data-poll="/orders/{stored[0].id}/status"' in shown.text
