"""Helpers for portal tests over HTTP: sign in as a browser would, read a page's CSRF token, submit its forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from httpx import ASGITransport, AsyncClient, Response

from api.app import create_app
from tests.api.people import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


async def submit(client: AsyncClient, page_url: str, action: str | None = None, **fields: str) -> Response:
    """Open `page_url`, then post its form (to `action`, default the same URL) with its CSRF token."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action or page_url, data={"csrf_token": csrf_of(page.text), **fields})


async def sign_in_portal(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    """Sign in through the sign-in page; the client keeps the session cookie."""
    response = await submit(client, "/signin", email=email, password=password)
    assert response.status_code == 303, response.text
    return response


@asynccontextmanager
async def browser(api: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A second client on the same app with cookies of its own (another person's browser)."""
    app = api._transport.app  # type: ignore[attr-defined]
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as client:
        yield client


__all__ = ["PASSWORD", "browser", "create_app", "csrf_of", "sign_in_portal", "submit"]
