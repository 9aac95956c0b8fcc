"""The sending state of one outbox notification, moved only by conditional updates (each its own transaction).

    pending ──claim──▶ claimed ──hand over──▶ handed over ──250──▶ sent
       ▲                  │                        │
       └──── release ─────┘ (a definite error)     └── the attempt died (its lease ran out) ──▶ unconfirmed

A claim is a lease held by one attempt (its token): while it runs no other attempt or worker may send the row.
`handed over` is written just before the message's data goes to the server, so an attempt that finds it set
by an attempt that died knows the server may have the message already and does not send it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import NotFound
from tessera.models import Event, EventKind


class Outcome(StrEnum):
    sent = "sent"
    unconfirmed = "unconfirmed"
    """The attempt that handed it over died before the server's answer was recorded: probably delivered."""
    refused = "refused"
    """The server refused every recipient permanently (5xx): retrying cannot help."""
    skipped = "skipped"
    """Written before Tessera sent e-mail (see the migration), never mailed."""


UNCONFIRMED_NOTE = (
    "the worker stopped after handing the message to the server and before recording its answer; "
    "not sent again, to avoid a duplicate"
)


@dataclass(frozen=True)
class Claimed:
    """This attempt may send the row now."""

    token: str
    recipients: list[str]
    subject: str
    body: str
    created_at: datetime
    locale: str | None
    attempt: int


@dataclass(frozen=True)
class Finished:
    """Nothing (more) to send."""

    outcome: Outcome
    message_id: str | None


@dataclass(frozen=True)
class Busy:
    """Another attempt holds the claim; try again after its lease."""

    until: datetime


async def claim(
    session: AsyncSession, event_id: uuid.UUID, now: datetime, lease: timedelta
) -> Claimed | Finished | Busy:
    """Take the row for one sending attempt, or say why not; the caller commits at once."""
    token = uuid.uuid4().hex
    taken = await session.execute(
        update(Event)
        .where(
            Event.id == event_id,
            Event.kind == EventKind.notification,
            Event.email_outcome.is_(None),
            Event.email_handed_over_at.is_(None),
            or_(Event.email_claimed_at.is_(None), Event.email_claimed_at < now - lease),
        )
        .values(
            email_claim_token=token,
            email_claimed_at=now,
            email_send_attempts=Event.email_send_attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    row = await session.get(Event, event_id, populate_existing=True)
    if row is None or row.kind != EventKind.notification:
        raise NotFound(f"no notification {event_id} in the outbox")
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return Claimed(
            token=token,
            recipients=list(row.recipients),
            subject=row.subject,
            body=row.body,
            created_at=row.created_at,
            locale=row.payload.get("locale") if isinstance(row.payload, dict) else None,
            attempt=row.email_send_attempts,
        )
    if row.email_outcome is not None:
        return Finished(Outcome(row.email_outcome), row.email_message_id)
    assert row.email_claimed_at is not None
    if row.email_claimed_at >= now - lease:
        return Busy(until=row.email_claimed_at + lease)
    # Handed over by an attempt whose lease ran out: it died between the server and the database.
    await session.execute(
        update(Event)
        .where(Event.id == event_id, Event.email_outcome.is_(None), Event.email_claim_token == row.email_claim_token)
        .values(
            email_outcome=Outcome.unconfirmed,
            email_sent_at=row.email_handed_over_at,
            email_claim_token=None,
            email_last_error=UNCONFIRMED_NOTE,
        )
        .execution_options(synchronize_session=False)
    )
    return Finished(Outcome.unconfirmed, row.email_message_id)


async def hand_over(session: AsyncSession, event_id: uuid.UUID, token: str, message_id: str, now: datetime) -> bool:
    """Mark the point after which the server may have the message; False if the claim was lost meanwhile."""
    done = await session.execute(
        update(Event)
        .where(Event.id == event_id, Event.email_claim_token == token, Event.email_outcome.is_(None))
        .values(email_handed_over_at=now, email_message_id=message_id)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def record_sent(
    session: AsyncSession, event_id: uuid.UUID, token: str, message_id: str, now: datetime, note: str | None
) -> None:
    """The server accepted the message; also corrects an `unconfirmed` another attempt wrote meanwhile."""
    await session.execute(
        update(Event)
        .where(
            Event.id == event_id,
            or_(Event.email_claim_token == token, Event.email_outcome == Outcome.unconfirmed),
            or_(Event.email_outcome.is_(None), Event.email_outcome == Outcome.unconfirmed),
        )
        .values(
            email_outcome=Outcome.sent,
            email_sent_at=now,
            email_message_id=message_id,
            email_claim_token=None,
            email_last_error=note,
        )
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, event_id: uuid.UUID, token: str, error: str) -> None:
    """The attempt failed and the server certainly does not have the message: the next attempt sends it."""
    await session.execute(
        update(Event)
        .where(Event.id == event_id, Event.email_claim_token == token, Event.email_outcome.is_(None))
        .values(email_claim_token=None, email_claimed_at=None, email_handed_over_at=None, email_last_error=error)
        .execution_options(synchronize_session=False)
    )


async def record_refused(session: AsyncSession, event_id: uuid.UUID, token: str, error: str) -> None:
    await session.execute(
        update(Event)
        .where(Event.id == event_id, Event.email_claim_token == token, Event.email_outcome.is_(None))
        .values(email_outcome=Outcome.refused, email_claim_token=None, email_last_error=error)
        .execution_options(synchronize_session=False)
    )


async def mark_dispatched(session: AsyncSession, event_ids: list[uuid.UUID], now: datetime) -> None:
    await session.execute(
        update(Event)
        .where(Event.id.in_(event_ids), Event.email_dispatched_at.is_(None))
        .values(email_dispatched_at=now)
        .execution_options(synchronize_session=False)
    )


async def undispatched(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """Notifications whose delivery workflow has not been started, oldest first."""
    rows = await session.scalars(
        select(Event.id)
        .where(Event.kind == EventKind.notification, Event.email_dispatched_at.is_(None))
        .order_by(Event.created_at, Event.id)
        .limit(limit)
    )
    return list(rows)
