"""Outbox notifications written as the notify steps and invitations write them, for the e-mail tests."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.email.delivery import Mailer
from tessera.email.message import parse_from
from tessera.email.smtp_url import parse_smtp_url
from tessera.models import Event, EventKind
from tessera.notifications import write_event


async def add_notification(
    sessions: async_sessionmaker[AsyncSession],
    *,
    recipients: list[str] | None = None,
    subject: str = "3 x PRO-CAD ready",
    body: str = "Your order is fulfilled.\n",
    locale: str | None = None,
) -> uuid.UUID:
    async with sessions() as session:
        event_id = await write_event(
            session,
            key=f"test-{uuid.uuid4()}",
            kind=EventKind.notification,
            name="order_fulfilled.txt.j2",
            organization_id=None,
            order_id=None,
            recipients=["jane@acme.example"] if recipients is None else recipients,
            subject=subject,
            body=body,
            payload={"locale": locale} if locale else {},
        )
        await session.commit()
        return event_id


async def load(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> Event:
    async with sessions() as session:
        event = await session.get(Event, event_id)
        assert event is not None
        return event


def mailer(url: str, ca_file: object = None) -> Mailer:
    from pathlib import Path

    return Mailer(
        server=parse_smtp_url(url),
        sender=parse_from("Example Software <licenses@example.com>"),
        ca_file=Path(str(ca_file)) if ca_file else None,
    )
