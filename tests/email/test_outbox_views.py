"""The outbox for people without a mail server: GET /dev/outbox (tessera dev) and `tessera outbox`."""

from __future__ import annotations

import asyncio
import os
import sys

from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.settings import REPO_ROOT, Settings
from tests.email.outbox_rows import add_notification

HOSTILE = "<script>alert(1)</script> & more"
BODY = f"Accept here:\n\n  https://portal.example.com/invitations/tok-123?a=1&b=2\n\n{HOSTILE}\n"


async def _get(settings: Settings, path: str, client: tuple[str, int] = ("127.0.0.1", 5555)) -> tuple[int, str]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, client=client)
        async with AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            answer = await http.get(path)
    return answer.status_code, answer.text


async def test_the_dev_page_shows_messages_escaped_with_links_to_follow(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_notification(sessions, recipients=["bob@northwind.example"], subject=f"Hi {HOSTILE}", body=BODY)
    dev = settings.model_copy(update={"dev_outbox": True})
    status, html = await _get(dev, "/dev/outbox")
    assert status == 200
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    link = "https://portal.example.com/invitations/tok-123?a=1&amp;b=2"
    assert f'<a href="{link}" rel="noreferrer">{link}</a>' in html
    assert "bob@northwind.example" in html
    assert "No SMTP server is configured" in html
    # Only for this machine: another client gets the same 404 as a missing page.
    assert (await _get(dev, "/dev/outbox", client=("192.0.2.7", 5555)))[0] == 404
    # And only when the setting is on (tessera dev turns it on).
    assert (await _get(settings, "/dev/outbox"))[0] == 404
    assert (await _get(dev, "/dev/outbox?limit=0"))[0] == 422
    assert (await _get(dev, "/dev/outbox?limit=5&page=2"))[0] == 422


async def test_tessera_outbox_lists_the_newest_messages(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for n in range(3):
        await add_notification(sessions, recipients=[f"user{n}@example.com"], subject=f"message {n}", body=BODY)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")},
        "TESSERA_DATABASE_URL": settings.resolved_database_url,
        "TESSERA_SECRET_KEY": "test-secret-key-not-for-production",
        "TESSERA_CONFIG_DIR": str(REPO_ROOT / "config"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tessera", "outbox", "--limit", "2",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert text.startswith("no SMTP server configured: messages stay here")
    assert "Subject: message 2" in text
    assert "Subject: message 1" in text
    assert "message 0" not in text
    assert "  |   https://portal.example.com/invitations/tok-123?a=1&b=2" in text
    assert "kept  en  to user2@example.com" in text
