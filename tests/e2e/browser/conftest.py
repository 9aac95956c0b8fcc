"""The portal in a real browser: `tessera dev` in a subprocess, Debian's Chromium driven by Playwright.

Nothing is downloaded at test time: Playwright's Python package drives the Chromium that `.ci/run` installs
(`apt-get install chromium`). Without it the tests skip, or fail where the tools are required (CI).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.e2e.stack import DevStack

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_TOOLS = os.environ.get("CI") == "true" or os.environ.get("TESSERA_REQUIRE_TOOLS") == "1"
# A shared machine under load (CI runs two test processes on two cores) is slower than a laptop.
expect.set_options(timeout=30_000)


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
