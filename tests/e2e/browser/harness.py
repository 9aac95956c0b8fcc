"""What the browser tests share: a window per person, screenshots, and the links the dev outbox holds."""

from __future__ import annotations

import asyncio
import html
import os
import re
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize

from tests.e2e.stack import DevStack

# The README's pictures are refreshed on purpose (`TESSERA_SCREENSHOTS_DIR=docs/screenshots`); an ordinary run
# writes its screenshots aside, so running the suite leaves the checkout as it was.
SCREENSHOTS = Path(
    os.environ.get("TESSERA_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "tessera-screenshots"
).resolve()
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
OUTBOX_SECONDS = 20.0


async def open_browser(browser: Browser, stack: DevStack, *, locale: str = "en-GB") -> tuple[BrowserContext, Page]:
    """A fresh browser window for one person (own cookies), at a fixed size so screenshots compare."""
    context = await browser.new_context(
        base_url=stack.api_url, viewport=VIEWPORT, locale=locale, timezone_id="Europe/Berlin", color_scheme="light"
    )
    context.set_default_timeout(30_000)  # a loaded machine: Temporal and the pages may answer slowly
    return context, await context.new_page()


async def shot(page: Page, name: str) -> Path:
    """Write <name>.png of what the window shows (1280 by 800, no animations, no caret) into SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


ARTICLE = re.compile(r"<article>(.*?)</article>", re.S)
LINK = re.compile(r'href="(https?://[^"]+)"')


def links_sent_to(outbox_html: str, email: str) -> list[str]:
    """Every link in the outbox's messages to `email`, newest message first, as paths on this site."""
    found = []
    for article in ARTICLE.findall(outbox_html):
        recipients = re.search(r"<p>To ([^·<]*)", article)
        if recipients is None or email not in [part.strip() for part in html.unescape(recipients.group(1)).split(",")]:
            continue
        for url in LINK.findall(article):
            # The link names the configured portal URL; the test's stack runs on a port of its own.
            found.append("/" + html.unescape(url).split("://", 1)[1].split("/", 1)[1])
    return found


async def newest_link(stack: DevStack, email: str, path_prefix: str) -> str:
    """The path of the newest link starting with `path_prefix` (e.g. "/invitations/") sent to `email`."""
    deadline = time.monotonic() + OUTBOX_SECONDS
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        while True:
            outbox = await client.get("/dev/outbox", params={"limit": 200})
            assert outbox.status_code == 200, outbox.text
            links = [link for link in links_sent_to(outbox.text, email) if link.startswith(path_prefix)]
            if links:
                return links[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {path_prefix} link was sent to {email}:\n{outbox.text[-3000:]}")
            await asyncio.sleep(0.3)
