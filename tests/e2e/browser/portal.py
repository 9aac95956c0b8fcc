"""What a person does in the portal, in Playwright terms: find fields by their labels, buttons by their text."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Locator, Page, expect
from playwright.async_api import Error as PlaywrightError

from tests.e2e.browser.harness import newest_link, open_browser, shot
from tests.e2e.stack import DevStack

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def label(text: str) -> re.Pattern[str]:
    """A label's exact text, allowing the asterisk that marks a required field."""
    return re.compile(rf"^\s*{re.escape(text)}(\s*\*)?\s*$")


def field_of(scope: Page | Locator, text: str) -> Locator:
    return scope.get_by_label(label(text))


def button(scope: Page | Locator, text: str) -> Locator:
    return scope.get_by_role("button", name=text, exact=True)


def form_with(page: Page, button_text: str) -> Locator:
    """The form whose submit button says `button_text` (pages hold several forms with alike labels)."""
    return page.locator("form").filter(has=button(page, button_text))


def row(page: Page, object_id: uuid.UUID | str) -> Locator:
    return page.locator(f'[data-id="{object_id}"]')


async def data_ids(scope: Page | Locator) -> list[str]:
    found: list[str] = await scope.locator("[data-id]").evaluate_all("els => els.map(e => e.dataset.id)")
    return found


async def choose(select: Locator, wanted: str, *alternatives: str) -> None:
    """Pick the option whose value is `wanted`, else the first whose text contains it (else an alternative)."""
    # Reading options does not wait: the next page may still be on its way after a click.
    await select.locator("option").first.wait_for(state="attached")
    options = await select.locator("option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent.trim()])"
    )
    for value, _text in options:
        if value == wanted:
            await select.select_option(value=value)
            return
    for candidate in (wanted, *alternatives):
        for value, text in options:
            if candidate.lower() in text.lower():
                await select.select_option(value=value)
                return
    raise AssertionError(f"no option {(wanted, *alternatives)!r} among {options}")


async def submit(page: Page, control: Locator) -> None:
    """Click a form's button and wait for the page the POST leads to."""
    async with page.expect_navigation(wait_until="load"):
        await control.click()


async def submit_twice(page: Page, control: Locator, lands_on: re.Pattern[str]) -> None:
    """Double-click a form's button, as a clumsy user does: the browser sends the form twice and abandons the first
    answer, so wait for the address the second one leads to."""
    await control.dblclick()
    for _ in range(3):
        try:
            await page.wait_for_url(lands_on, wait_until="load")
            return
        except PlaywrightError as error:
            # The navigation being waited for was the abandoned one: wait for the one that replaced it.
            if "ERR_ABORTED" not in str(error):
                raise
    await page.wait_for_url(lands_on, wait_until="load")


async def reload_until_visible(page: Page, target: Locator, seconds: float = 60.0) -> None:
    """Reload until `target` shows: what a workflow does next reaches the page only when it is opened again."""
    for _ in range(int(seconds * 2)):
        if await target.count() and await target.first.is_visible():
            return
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(target.first).to_be_visible()


async def heading(page: Page, text: str) -> None:
    await expect(page.locator("h1")).to_have_text(label(text))


def id_in_url(page: Page, prefix: str) -> uuid.UUID:
    match = re.search(rf"{re.escape(prefix)}({UUID})", page.url)
    assert match is not None, f"expected {prefix}<id> in {page.url}"
    return uuid.UUID(match.group(1))


@dataclass
class Person:
    """Someone at a browser window of their own (cookies apart from everyone else's)."""

    email: str
    name: str
    password: str
    context: BrowserContext
    page: Page


async def person(browser: Browser, stack: DevStack, email: str, name: str, *, locale: str = "en-GB") -> Person:
    context, page = await open_browser(browser, stack, locale=locale)
    return Person(email=email, name=name, password=f"{name} at the portal 2026!", context=context, page=page)


async def accept_invitation(who: Person, link: str, *, screenshot: str = "") -> None:
    """Open the invitation link, set name and password; the invitee is signed in and lands on their tickets."""
    page = who.page
    await page.goto(link)
    await field_of(page, "E-mail address").fill(who.email)
    await field_of(page, "Your name").fill(who.name)
    await field_of(page, "New password").fill(who.password)
    if screenshot:
        await shot(page, screenshot)
    await submit(page, button(page, "Accept the invitation"))
    await page.wait_for_url(re.compile(r"/tickets$"))
    await heading(page, "My tickets")


async def join_by_invitation(stack: DevStack, who: Person) -> None:
    await accept_invitation(who, await newest_link(stack, who.email, "/invitations/"))


async def invite(page: Page, organization_id: uuid.UUID, email: str, role: str) -> None:
    """On the group page: send an invitation."""
    await page.goto(f"/organizations/{organization_id}")
    form = form_with(page, "Send invitation")
    await field_of(form, "E-mail address").fill(email)
    await choose(field_of(form, "Role"), role)
    await submit(page, button(form, "Send invitation"))
    await expect(page.locator(".field-error")).to_have_count(0)


async def create_organization(page: Page, parent_id: uuid.UUID, name: str, kind: str, country: str) -> uuid.UUID:
    """On the parent's group page: a new sub-organization; its id, read from its link on the parent's page."""
    await page.goto(f"/organizations/{parent_id}")
    form = form_with(page, "Create organization")
    await field_of(form, "Name").fill(name)
    await choose(field_of(form, "Kind"), kind)
    await field_of(form, "Country").fill(country)
    await submit(page, button(form, "Create organization"))
    await expect(page.locator(".field-error")).to_have_count(0)
    await page.goto(f"/organizations/{parent_id}")
    link = page.locator("main a").filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")).first
    href = await link.get_attribute("href")
    assert href is not None, f"no link to {name} on its parent's page"
    assert re.fullmatch(rf"/organizations/{UUID}", href), href
    return uuid.UUID(href.rsplit("/", 1)[1])


async def save_grant(
    page: Page, organization_id: uuid.UUID, group: str, permissions: list[str], *, quota: str, delegable: bool
) -> None:
    """On the grants page of an organization: grant (or delegate) rights on a product group."""
    await page.goto(f"/organizations/{organization_id}/grants")
    await heading(page, "Grants")
    form = form_with(page, "Save grant")
    await choose(field_of(form, "Product group"), group)
    for permission in ("create", "revoke", "cancel", "allocate"):
        box = field_of(form, permission)
        await (box.check() if permission in permissions else box.uncheck())
    await field_of(form, "Quota").fill(quota)
    box = field_of(form, "Delegable")
    await (box.check() if delegable else box.uncheck())
    await submit(page, button(form, "Save grant"))
    await expect(page.locator(".field-error")).to_have_count(0)


@dataclass
class Story:
    """The steps of the story as they pass; a failing step names itself, the page it was on and what went wrong."""

    failures_dir: Path
    passed: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def step(self, name: str, page: Page) -> AsyncIterator[None]:
        try:
            yield
        except Exception as error:
            self.failures_dir.mkdir(parents=True, exist_ok=True)
            picture = self.failures_dir / f"failed-{len(self.passed) + 1:02d}.png"
            try:
                await page.screenshot(path=str(picture), full_page=True)
            except Exception:  # the failure may be the browser itself; the message matters more
                picture = Path("(no screenshot)")
            done = "; ".join(self.passed) or "none"
            raise AssertionError(
                f"step {len(self.passed) + 1} '{name}' failed on {page.url}: {error}\n"
                f"passed before it: {done}\nscreenshot: {picture}"
            ) from error
        self.passed.append(name)
