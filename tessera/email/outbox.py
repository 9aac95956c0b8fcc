"""Reading the outbox of notifications for people: `tessera outbox` and the dev page at /dev/outbox."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.models import Event, EventKind

MAX_LIMIT = 200
_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class OutboxMessage:
    id: str
    created_at: datetime
    recipients: list[str]
    subject: str
    body: str
    locale: str
    status: str
    detail: str


def describe_status(event: Event, *, smtp_configured: bool) -> tuple[str, str]:
    """(status, detail) of one notification in words."""
    if event.email_outcome is not None:
        return event.email_outcome, event.email_last_error or (event.email_message_id or "")
    if event.email_dispatched_at is None:
        return ("queued", "waiting for the relay") if smtp_configured else ("kept", "no SMTP server configured")
    if event.email_handed_over_at is not None:
        return "sending", "handed to the SMTP server"
    if event.email_last_error:
        return "retrying", f"attempt {event.email_send_attempts}: {event.email_last_error}"
    return "dispatched", "its delivery workflow runs"


async def recent_notifications(session: AsyncSession, limit: int, *, smtp_configured: bool) -> list[OutboxMessage]:
    """The newest `limit` notifications (1 to MAX_LIMIT), newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
    rows = await session.scalars(
        select(Event)
        .where(Event.kind == EventKind.notification)
        .order_by(Event.created_at.desc(), Event.id.desc())
        .limit(limit)
    )
    messages = []
    for event in rows:
        status, detail = describe_status(event, smtp_configured=smtp_configured)
        locale = event.payload.get("locale") if isinstance(event.payload, dict) else None
        messages.append(
            OutboxMessage(
                id=str(event.id),
                created_at=event.created_at,
                recipients=list(event.recipients),
                subject=event.subject,
                body=event.body,
                locale=str(locale or "en"),
                status=status,
                detail=detail,
            )
        )
    return messages


def linked_html(text: str) -> Markup:
    """The text HTML-escaped, with its http(s) links made clickable (so an invitation link can be followed)."""
    parts: list[str] = []
    position = 0
    for match in _LINK.finditer(text):
        parts.append(escape(text[position : match.start()]))
        url = escape(match.group(0))
        parts.append(Markup('<a href="{0}" rel="noreferrer">{0}</a>').format(url))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)
