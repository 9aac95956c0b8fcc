"""The create-license wizard and the order pages, against the real intake and a Temporal dev server."""

from __future__ import annotations

from httpx import AsyncClient
from temporalio.testing import WorkflowEnvironment

from tessera.models import Order
from tessera.settings import Settings
from tests.api.portal.browser_forms import csrf_of
from tests.api.portal.orders_world import (
    PRODUCT,
    Sessions,
    add_product,
    as_pairs,
    create_through_wizard,
    details_form,
    hidden_fields,
    order_id_of,
    orders_of,
    portal_user,
    status_of,
    step_url,
    until,
)
from tests.conftest import RightsWorld
from workflows.worker import build_worker


async def test_the_wizard_walks_five_steps_and_the_order_page_follows_the_order_to_its_tickets(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    rights_world: RightsWorld,
    sessions: Sessions,
    dev_env: WorkflowEnvironment,
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await portal_user(orders_api, sessions, w, "customer_admin")

    first = await orders_api.get("/licenses/new")
    assert first.status_code == 200
    assert "<h1>Create license</h1>" in first.text
    assert f'value="{w.orgs["C1"]}"' in first.text
    # G1's grant has no `create`, C2 and C3 are out of reach: not offered.
    for other in ("G1", "C2", "C3", "R1"):
        assert str(w.orgs[other]) not in first.text
    assert '<label for="f-organization">Organization</label>' in first.text

    second = await orders_api.get(f"/licenses/new?organization={w.orgs['C1']}")
    assert '<label for="f-group">Product group</label>' in second.text
    assert "CAD (9 left)" in second.text  # quota 10, one delegated on to G1
    assert "Simulation" not in second.text  # no grant on SIM

    third = await orders_api.get(f"/licenses/new?organization={w.orgs['C1']}&group=CAD")
    assert '<label for="f-product">Product</label>' in third.text
    assert f'value="{PRODUCT}"' in third.text
    assert 'value="PRO-CAD"' in third.text

    fourth = await orders_api.get(step_url(w))
    assert fourth.status_code == 200
    html = fourth.text
    assert 'id="f-field.seats" name="field.seats" type="number" value="5" required' in html
    assert 'min="1" max="50"' in html
    assert '<option value="30" selected>30</option>' in html  # the choice's default
    assert 'name="field.support" type="checkbox" value="on" checked' in html
    assert 'name="module" type="checkbox" value="RENDER" checked' in html
    assert 'name="module" type="checkbox" value="CLOUD">' in html
    assert 'name="field.starts" type="date"' in html

    # A value the product refuses comes back next to its field, with the API's message.
    token = csrf_of(html)
    wrong = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, **{"field.seats": "99"})}
    )
    assert wrong.status_code == 422
    assert "99 is above the maximum 50" in wrong.text
    assert 'id="f-field.seats" name="field.seats" type="number" value="99"' in wrong.text
    assert 'aria-invalid="true" aria-describedby="field.seats-error"' in wrong.text
    text_for_int = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, **{"field.seats": "many"})}
    )
    assert text_for_int.status_code == 422
    assert "&#39;many&#39; is not of type int" in text_for_int.text
    bad_choice = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, **{"field.trial_days": "7"})}
    )
    assert "&#39;7&#39; is not among the allowed values: 5, 30, 60, 90" in bad_choice.text
    bad_module = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, module=["RENDER", "NUKE"])}
    )
    assert bad_module.status_code == 422
    assert "unknown module &#39;NUKE&#39;" in bad_module.text

    too_long = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, **{"field.edition": "x" * 21})}
    )
    assert "is 21 characters long; at most 20 are allowed" in too_long.text
    not_a_date = await orders_api.post(
        "/licenses/new", data={"csrf_token": token, **details_form(w, **{"field.starts": "31.12.2026"})}
    )
    assert "&#39;31.12.2026&#39; is not a date (YYYY-MM-DD)" in not_a_date.text

    # Fixed: step 5 asks for quantity, allocation and visibility.
    fixed = await orders_api.post(
        "/licenses/new",
        data={"csrf_token": token, **details_form(w, **{"field.seats": "12"}, module=["RENDER", "CLOUD"])},
    )
    assert fixed.status_code == 200, fixed.text
    for label in ("Quantity", "Allocate to", "Visibility"):
        assert f">{label}" in fixed.text
    assert "customer.member@example.com" in fixed.text  # a named member may get the tickets
    assert (
        'name="quantity" type="number" value="1" required aria-describedby="quantity-hint" min="1" max="9"'
        in fixed.text
    )
    assert ">Create license</button>" in fixed.text

    worker = build_worker(dev_env.client, orders_temporal_settings, sessions)
    async with worker:
        created = await create_through_wizard(
            orders_api, w, quantity="2", allocation=f"user:{w.users['customer_member']}", **{"field.seats": "12"}
        )
        order_id = order_id_of(created)
        async with sessions() as session:
            order = await session.get(Order, order_id)
            assert order is not None
            assert order.fields == {"seats": 12, "trial_days": 30, "support": True}
            assert order.modules == ["RENDER"]
            assert order.allocate_to_user_id == w.users["customer_member"]
            assert order.idempotency_key is not None
            assert order.idempotency_key.startswith("portal-")

        async def fulfilled() -> bool:
            return await status_of(sessions, order_id) == "fulfilled"

        await until(fulfilled)
        shown = await orders_api.get(f"/orders/{order_id}")
        assert shown.status_code == 200
        assert "<h1>Order</h1>" in shown.text
        assert "data-final" in shown.text
        assert "data-poll" not in shown.text
        assert f'href="/organizations/{w.orgs["C1"]}"' in shown.text
        assert shown.text.count("customer_member") >= 2  # both tickets allocated to the named member
        status = await orders_api.get(f"/orders/{order_id}/status")
        assert status.status_code == 200
        assert "<html" not in status.text
        assert "data-final" in status.text
        listed = await orders_api.get("/orders")
        assert f'data-id="{order_id}"' in listed.text


async def test_a_double_submit_or_a_reload_creates_one_order(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await portal_user(orders_api, sessions, w, "customer_admin")
    page = await orders_api.get(step_url(w))
    finish = await orders_api.post("/licenses/new", data={"csrf_token": csrf_of(page.text), **details_form(w)})
    form = as_pairs([*hidden_fields(finish.text), ("quantity", "3"), ("allocation", "organization")])
    form["visibility"] = "admins_only"
    first = await orders_api.post("/licenses/new", data=form)
    again = await orders_api.post("/licenses/new", data=form)
    assert order_id_of(first) == order_id_of(again)
    assert len(await orders_of(sessions, w)) == 1
    # The same form sent with other values is not silently the first order, nor a second one behind its back.
    changed = await orders_api.post("/licenses/new", data={**form, "quantity": "4"})
    assert changed.status_code == 422
    assert "sent before with other values" in changed.text
    assert "Idempotency-Key" not in changed.text
    assert len(await orders_of(sessions, w)) == 1


async def test_step_five_refuses_what_the_intake_refuses(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await add_product(sessions, w)
    await portal_user(orders_api, sessions, w, "customer_admin")
    over = await create_through_wizard(orders_api, w, quantity="11")
    assert over.status_code == 403
    assert "at most 9 under the grant" in over.text
    not_a_number = await create_through_wizard(orders_api, w, quantity="two")
    assert not_a_number.status_code == 422
    assert "a whole number of licenses" in not_a_number.text
    foreign_member = await create_through_wizard(orders_api, w, allocation=f"user:{w.users['m_C2']}")
    assert foreign_member.status_code == 422
    assert "no such member of the organization" in foreign_member.text
    # A field value tampered with after step 4 sends the person back there, with the message.
    page = await orders_api.get(step_url(w))
    finish = await orders_api.post("/licenses/new", data={"csrf_token": csrf_of(page.text), **details_form(w)})
    form = as_pairs([*hidden_fields(finish.text), ("quantity", "1"), ("allocation", "requester")])
    form.update({"visibility": "all_members", "field.seats": "0"})
    back = await orders_api.post("/licenses/new", data=form)
    assert back.status_code == 422
    assert "0 is below the minimum 1" in back.text
    assert 'name="field.seats"' in back.text
    assert await orders_of(sessions, w) == []
