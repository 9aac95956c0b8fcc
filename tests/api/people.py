"""Helpers for tests about people: read an invitation's link from the outbox, as the invitee's mailbox would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.auth.passwords import hash_password
from tessera.models import Event, User
from tessera.settings import Settings

LINK = re.compile(r"/invitations/([A-Za-z0-9_-]+)")
PASSWORD = "correct horse battery staple"


async def invitation_token(sessions: async_sessionmaker[AsyncSession], email: str) -> str:
    """The token of the newest invitation sent to `email`."""
    async with sessions() as session:
        events = (await session.scalars(select(Event).where(Event.name == "invitation.txt.j2"))).all()
    sent = [event for event in events if event.recipients == [email]]
    assert sent, f"no invitation was sent to {email}"
    newest = max(sent, key=lambda event: event.created_at)
    match = LINK.search(newest.body)
    assert match is not None, newest.body
    return match.group(1)


async def join(
    api: AsyncClient, sessions: async_sessionmaker[AsyncSession], email: str, password: str | None = PASSWORD
) -> None:
    """Redeem the newest invitation to `email` (with a password unless the account has one)."""
    body = {"token": await invitation_token(sessions, email), "email": email}
    if password is not None:
        body["password"] = password
    redeemed = await api.post("/api/v1/invitations/redeem", json=body)
    assert redeemed.status_code == 200, redeemed.text


async def sign_in(api: AsyncClient, email: str, password: str = PASSWORD, **extra: object) -> str:
    """A personal key for the account."""
    response = await api.post("/api/v1/auth/keys", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[AsyncClient]:
    """An in-process client of an app built from `settings` (e.g. other limits, a rotated secret)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://tessera.test") as client:
            yield client


async def give_password(sessions: async_sessionmaker[AsyncSession], email: str, password: str = PASSWORD) -> None:
    """Set a password directly, for tests about what happens after an invitation."""
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.email == email))
        assert user is not None, email
        user.password_hash = hash_password(password)
        await session.commit()
