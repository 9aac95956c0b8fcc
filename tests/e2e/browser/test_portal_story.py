"""The portal's story in a real browser, on the real stack: from the vendor to the end user's activation.

The vendor's administrator (the one `tessera dev` creates) sets a password with the link `tessera dev` prints,
creates a reseller and grants it rights; the reseller's administrator delegates to a customer and invites its
administrator; she creates a license through the five steps (a field error shown and fixed on the way), which the
vendor approves in his inbox; the ticket appears on the customer's group page and is allocated to a member, who
activates it into a cloud container; the subscription is cancelled with its effective end shown; a German-speaking
user sees German pages. Each main page is photographed (see harness.SCREENSHOTS).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_date
from playwright.async_api import Browser, expect

from tests.e2e.browser.harness import shot
from tests.e2e.browser.portal import (
    Story,
    accept_invitation,
    button,
    choose,
    create_organization,
    data_ids,
    field_of,
    heading,
    id_in_url,
    invite,
    join_by_invitation,
    person,
    reload_until_visible,
    row,
    save_grant,
    submit,
    submit_twice,
)
from tests.e2e.stack import DevStack

pytestmark = pytest.mark.e2e

VENDOR_ADMIN = "admin@vendor.example"


async def api_get(stack: DevStack, key: str, path: str) -> Any:
    """What the API says, read with the vendor admin's key to check what the pages did."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        response = await api.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_from_vendor_to_activation_and_cancellation(stack: DevStack, browser: Browser, tmp_path: Path) -> None:
    admin_key = stack.admin_key_printed()
    assert admin_key is not None, stack.text()
    me = await api_get(stack, admin_key, "/users/me")
    vendor_id = uuid.UUID(me["memberships"][0]["organization_id"])
    story = Story(failures_dir=tmp_path)

    vera = await person(browser, stack, VENDOR_ADMIN, "Vera Vendor")
    async with story.step("sign-in page", vera.page):
        await vera.page.goto("/signin")
        await expect(button(vera.page, "Sign in")).to_be_visible()
        await shot(vera.page, "signin")

    async with story.step("vendor admin sets a password with the link tessera dev printed", vera.page):
        link = stack.admin_password_link_printed()
        assert link is not None, stack.text()
        assert link.startswith(stack.api_url), link  # the stack's own port, not a configured default
        await accept_invitation(vera, link, screenshot="invitation")
        await shot(vera.page, "tickets-empty")

    async with story.step("groups page", vera.page):
        await vera.page.goto("/organizations")
        await heading(vera.page, "Groups")
        assert str(vendor_id) in await data_ids(vera.page)
        await shot(vera.page, "groups")

    async with story.step("vendor creates a reseller", vera.page):
        reseller_id = await create_organization(vera.page, vendor_id, "Northwind Software Partners", "reseller", "DE")

    async with story.step("vendor grants the reseller rights on simulation (delegable)", vera.page):
        await save_grant(
            vera.page, reseller_id, "SIM", ["create", "revoke", "cancel", "allocate"], quota="", delegable=True
        )
        await expect(vera.page.locator("main")).to_contain_text("Simulation")
        await shot(vera.page, "grants")

    rita = await person(browser, stack, "rita@northwind.example", "Rita Reseller")
    async with story.step("vendor invites the reseller's admin", vera.page):
        await invite(vera.page, reseller_id, rita.email, "admin")

    async with story.step("reseller admin accepts and signs in", rita.page):
        await join_by_invitation(stack, rita)

    async with story.step("reseller creates a customer and delegates a grant to it", rita.page):
        customer_id = await create_organization(rita.page, reseller_id, "Contoso Engineering", "customer", "AT")
        await save_grant(rita.page, customer_id, "SIM", ["create", "cancel", "allocate"], quota="5", delegable=False)

    carla = await person(browser, stack, "carla@contoso.example", "Carla Customer")
    mo = await person(browser, stack, "mo@contoso.example", "Mo Member")
    async with story.step("reseller invites the customer's admin", rita.page):
        await invite(rita.page, customer_id, carla.email, "admin")

    async with story.step("customer admin accepts, invites a member, who accepts", carla.page):
        await join_by_invitation(stack, carla)
        await invite(carla.page, customer_id, mo.email, "member")
        await join_by_invitation(stack, mo)

    page = carla.page
    async with story.step("create license: organization, product group, product", page):
        await page.goto("/licenses/new")
        await heading(page, "Create license")
        await choose(field_of(page, "Organization"), str(customer_id))
        await shot(page, "create-license-1-organization")
        await submit(page, button(page, "Next"))
        await choose(field_of(page, "Product group"), "SIM")
        await submit(page, button(page, "Next"))
        await choose(field_of(page, "Product"), "SIM-CLOUD-Y")
        await shot(page, "create-license-3-product")
        await submit(page, button(page, "Next"))

    async with story.step("create license: fields and modules", page):
        # SimCloud asks no fields; its one module may stay as it is. Some forms skip this step when empty.
        if await field_of(page, "Quantity").count() == 0:
            await submit(page, button(page, "Next"))

    async with story.step("create license: a bad quantity is shown next to the field, then fixed", page):
        quantity = field_of(page, "Quantity")
        # The browser's own check would stop "0" before it is sent; the server must refuse it as well.
        await page.locator("form").evaluate_all("forms => forms.forEach(f => f.noValidate = true)")
        await quantity.fill("0")
        await submit(page, button(page, "Create license"))
        await expect(page.locator(".field-error").first).to_be_visible()
        await expect(field_of(page, "Quantity")).to_have_attribute("aria-invalid", "true")
        await shot(page, "create-license-error")
        await field_of(page, "Quantity").fill("1")
        await choose(field_of(page, "Allocate to"), "organization")
        await choose(field_of(page, "Visibility"), "all_members")
        # A clumsy double click sends the form twice: still one order.
        await submit_twice(page, button(page, "Create license"), re.compile(r"/orders/[0-9a-f-]{36}$"))
        order_id = id_in_url(page, "/orders/")
        await heading(page, "Order")
        await shot(page, "order-pending")
        await page.wait_for_timeout(1000)  # the other click's request, had it made a second order
        orders = (await api_get(stack, admin_key, "/orders?limit=200"))["items"]
        assert [o["id"] for o in orders if o["organization_id"] == str(customer_id)] == [str(order_id)], orders

    async with story.step("vendor approves in his inbox", vera.page):
        await vera.page.goto("/approvals")
        await heading(vera.page, "Approvals")
        decision = row(vera.page, order_id)
        await reload_until_visible(vera.page, decision)
        await field_of(decision, "Comment").fill("Approved for the pilot")
        await shot(vera.page, "approvals")
        await submit(vera.page, button(decision, "Approve"))

    async with story.step("the order is fulfilled and shows its ticket", page):
        await page.goto(f"/orders/{order_id}")
        order = await api_get(stack, admin_key, f"/orders/{order_id}")
        for _ in range(180):  # up to 90 s: the worker shares a loaded machine with the rest of the suite
            order = await api_get(stack, admin_key, f"/orders/{order_id}")
            if order["status"] == "fulfilled":
                break
            await page.wait_for_timeout(500)
        assert order["status"] == "fulfilled", order
        tickets = (await api_get(stack, admin_key, "/tickets?limit=200"))["items"]
        [ticket] = [t for t in tickets if t["organization_id"] == str(customer_id)]
        ticket_id = ticket["id"]
        await expect(row(page, ticket_id)).to_be_visible(timeout=40_000)  # the page polls its status
        await expect(page.locator("#order-status [data-final]")).to_be_attached(timeout=40_000)
        await shot(page, "order")
        await page.goto("/orders")
        await heading(page, "Orders")
        await expect(row(page, order_id)).to_be_visible()
        await shot(page, "orders")

    async with story.step("the ticket is on the group page and allocated to the member", page):
        await page.goto(f"/organizations/{customer_id}")
        await heading(page, "Contoso Engineering")
        ticket_row = row(page, ticket_id)
        await choose(field_of(ticket_row, "Allocate to"), mo.email, mo.name)
        await choose(field_of(ticket_row, "Visibility"), "admins_only")
        await submit(page, button(ticket_row, "Save"))
        allocated = await api_get(stack, admin_key, f"/tickets/{ticket_id}")
        assert allocated["allocated_user_id"] is not None, allocated
        await submit(page, button(row(page, ticket_id), "Show code"))
        await expect(row(page, ticket_id).locator("code.secret")).to_be_visible()
        await shot(page, "group-page")

    async with story.step("the member sees the ticket and activates it into a cloud container", mo.page):
        await mo.page.goto("/tickets")
        await heading(mo.page, "My tickets")
        await shot(mo.page, "tickets")
        await submit_twice(mo.page, button(row(mo.page, ticket_id), "Activate"), re.compile(r"/activations"))
        await mo.page.wait_for_timeout(1000)
        activated = await api_get(stack, admin_key, f"/tickets/{ticket_id}")
        assert activated["status"] == "activated", activated
        await mo.page.goto("/activations")
        await heading(mo.page, "My activations")
        await expect(button(mo.page, "Return")).to_be_visible()
        await shot(mo.page, "activations")
        await mo.page.goto("/cloud-containers")
        await heading(mo.page, "My cloud containers")
        await expect(button(mo.page, "Download credential file")).to_be_visible()
        await shot(mo.page, "cloud-containers")

    async with story.step("a member opening a group above his own is answered 404", mo.page):
        for path in (f"/organizations/{reseller_id}", f"/organizations/{vendor_id}"):
            response = await mo.page.goto(path)
            assert response is not None
            assert response.status == 404, (path, response.status)
            await expect(mo.page.locator("main")).not_to_contain_text("Northwind")
        await shot(mo.page, "not-found")

    async with story.step("the customer admin cancels the subscription; its effective end is stated", page):
        subscriptions = (await api_get(stack, admin_key, f"/subscriptions?organization_id={customer_id}"))["items"]
        [subscription] = [s for s in subscriptions if s["order_id"] == str(order_id)]
        subscription_id = subscription["id"]
        await page.goto("/subscriptions")
        await heading(page, "Subscriptions")
        await expect(row(page, subscription_id)).to_be_visible()
        await shot(page, "subscriptions")
        await page.goto(f"/subscriptions/{subscription_id}")
        await shot(page, "subscription")
        await submit(page, button(page, "Cancel subscription"))
        await expect(button(page, "Confirm cancellation")).to_be_visible()
        stated = await page.locator("main").inner_text()
        await shot(page, "subscription-cancel")
        detail = re.compile(r"/subscriptions/[0-9a-f-]{36}(\?.*)?$")
        await submit_twice(page, button(page, "Confirm cancellation"), detail)
        await page.wait_for_timeout(1000)
        cancelled = await api_get(stack, admin_key, f"/subscriptions/{subscription_id}")
        assert cancelled["status"] == "non_renewing", cancelled
        assert len(cancelled["cancellations"]) == 1, cancelled["cancellations"]
        zone = ZoneInfo(cancelled["timezone"])
        end = datetime.fromisoformat(cancelled["effective_end_at"]).astimezone(zone)
        # The end is an instant: a page may name its day, or the last day before it.
        days = {format_date(day.date(), format="medium", locale="en") for day in (end, end - timedelta(seconds=1))}
        assert any(day in stated for day in days), (days, stated)
        await expect(button(page, "Uncancel")).to_be_visible()

    async with story.step("the vendor's pages: reports, webhooks, API keys", vera.page):
        for path, title, name in (
            ("/reports", "Reports", "reports"),
            ("/webhooks", "Webhooks", "webhooks"),
            ("/api-keys", "API keys", "api-keys"),
            ("/offline", "Offline activation", "offline"),
        ):
            await vera.page.goto(path)
            await heading(vera.page, title)
            await shot(vera.page, name)

    async with story.step("a form on another site cannot act for the signed-in vendor admin", vera.page):
        # The page of another site, with a form that posts itself to the portal (the cookie is SameSite=Lax and the
        # form lacks the token, so nothing may happen either way).
        attack = (
            f'<form method="post" action="{stack.api_url}/api-keys"><input name="name" value="planted">'
            '<input name="csrf_token" value="guessed"></form><script>document.forms[0].submit()</script>'
        )
        await vera.page.route(
            "http://elsewhere.example/**", lambda route: route.fulfill(body=attack, content_type="text/html")
        )
        async with vera.page.expect_navigation(url=re.compile(re.escape(stack.api_url))) as arrived:
            await vera.page.goto("http://elsewhere.example/prize")
        answer = await arrived.value
        assert answer is not None
        assert answer.status in (403, 200), answer.status  # refused, or the sign-in page it was sent to
        keys = await api_get(stack, admin_key, "/api-keys?limit=200")
        assert "planted" not in [key["name"] for key in keys["items"]], keys
        await vera.page.goto("/api-keys")
        await heading(vera.page, "API keys")  # still signed in: the refused post changed nothing

    async with story.step("a German-speaking member switches the portal to German", mo.page):
        await mo.page.goto("/account")
        profile = mo.page.locator('form[action="/account/profile"]')
        await profile.locator('select[name="locale"]').select_option("de")
        await submit(mo.page, profile.locator('button[type="submit"]'))
        await mo.page.goto("/tickets")
        await expect(mo.page.locator("html")).to_have_attribute("lang", "de")
        await heading(mo.page, "Meine Tickets")
        await shot(mo.page, "tickets-de")
        await mo.page.goto("/activations")
        await expect(mo.page.locator("html")).to_have_attribute("lang", "de")
        await shot(mo.page, "activations-de")

    laptop = await person(browser, stack, mo.email, mo.name, locale="de-DE")
    laptop.password = mo.password
    async with story.step("on a German browser the sign-in page is German, and so is what follows", laptop.page):
        await laptop.page.goto("/signin")
        await expect(laptop.page.locator("html")).to_have_attribute("lang", "de")
        await heading(laptop.page, "Anmelden")
        await field_of(laptop.page, "E-Mail-Adresse").fill(mo.email)
        await field_of(laptop.page, "Passwort").fill(mo.password)
        await shot(laptop.page, "signin-de")
        await submit(laptop.page, button(laptop.page, "Anmelden"))
        await laptop.page.wait_for_url(re.compile(r"/tickets$"))
        await heading(laptop.page, "Meine Tickets")
        await expect(row(laptop.page, ticket_id)).to_be_visible()

    for who in (vera, rita, carla, mo, laptop):
        await who.context.close()
