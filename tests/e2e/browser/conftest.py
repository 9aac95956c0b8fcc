"""The portal in a real browser: `tessera dev` in a subprocess, Debian's Chromium driven by Playwright.

Nothing is downloaded at test time: Playwright's Python package drives the Chromium that `.ci/run` installs
(`apt-get install chromium`). Without it the tests skip, or fail where the tools are required (CI).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from tessera.settings import REPO_ROOT
from tests.e2e.stack import DevStack

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_TOOLS = os.environ.get("CI") == "true" or os.environ.get("TESSERA_REQUIRE_TOOLS") == "1"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
OUTBOX_SECONDS = 20.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium; missing is a failure where the tools are required (CI), a skip elsewhere."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[DevStack]:
    """`tessera dev` on free ports: Temporal dev server, worker, SQLite and the API with the portal."""
    del chromium  # only its presence: no stack is started for a test that would skip anyway
    stack = DevStack(workdir=tmp_path_factory.mktemp("portal-stack"))
    stack.start()
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.kill()


@pytest.fixture(scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """One headless Chromium for the module; each person gets a context of their own (cookies apart)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        yield launched
        await launched.close()


@dataclass
class Person:
    """Someone at a browser: their address, password and a page in a context of their own."""

    email: str
    password: str
    context: BrowserContext
    page: Page


async def open_browser(browser: Browser, stack: DevStack, *, locale: str = "en-GB") -> tuple[BrowserContext, Page]:
    """A fresh browser window for one person (own cookies), at a fixed size so screenshots compare."""
    context = await browser.new_context(
        base_url=stack.api_url, viewport=VIEWPORT, locale=locale, timezone_id="Europe/Berlin", color_scheme="light"
    )
    context.set_default_timeout(15_000)
    return context, await context.new_page()


async def shot(page: Page, name: str) -> Path:
    """Write docs/screenshots/<name>.png of what the window shows (1280 by 800, no animations, no caret)."""
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
        if recipients is None or email not in html.unescape(recipients.group(1)).split(", "):
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


def tessera_cli(stack: DevStack, *args: str) -> str:
    """Run `tessera <args>` against the stack's database and settings, as its operator would; its output."""
    finished = subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args],
        cwd=stack.workdir,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout
