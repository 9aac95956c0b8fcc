"""Send one outbox notification through SMTP at most once per row, with one attempt at a time.

Each step commits on its own (claim, hand-over, outcome): the database must know what the server may have
before the server has it. What remains (README, "E-mail"): a worker killed after writing the hand-over and
before the server accepted the data loses that message (it is marked `unconfirmed`, not resent); a connection
lost while the server was answering the data is retried with the same Message-ID, which can duplicate it.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.db import unit_of_work
from tessera.email import state
from tessera.email.message import Sender, build_message, parse_from
from tessera.email.smtp_url import SmtpServer
from tessera.models import utcnow
from tessera.settings import Settings


class SendFailed(Exception):
    """The attempt did not send the message; `retryable` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Mailer:
    """Where and as whom messages are sent."""

    server: SmtpServer
    sender: Sender
    ca_file: Path | None = None

    @property
    def lease(self) -> timedelta:
        """How long one attempt may hold a row: longer than an attempt can take (see `attempt_budget`)."""
        return timedelta(seconds=self.attempt_budget + 5)

    @property
    def attempt_budget(self) -> float:
        # Connecting (with TLS and login), the envelope and the data each wait at most `timeout`.
        return 3 * self.server.timeout

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


@dataclass(frozen=True)
class Delivered:
    outcome: state.Outcome
    message_id: str | None
    attempt: int = 0


async def deliver(sessions: async_sessionmaker[AsyncSession], mailer: Mailer, event_id: uuid.UUID) -> Delivered:
    """Send the row's message unless it was sent (or handed over by an attempt that died); raise SendFailed."""
    async with unit_of_work(sessions) as session:
        claimed = await state.claim(session, event_id, utcnow(), mailer.lease)
    if isinstance(claimed, state.Finished):
        return Delivered(claimed.outcome, claimed.message_id)
    if isinstance(claimed, state.Busy):
        raise SendFailed(
            f"another attempt is sending this message (until {claimed.until:%H:%M:%S} UTC)", retryable=True
        )
    outgoing = build_message(
        event_id=event_id,
        sender=mailer.sender,
        recipients=claimed.recipients,
        subject=claimed.subject,
        body=claimed.body,
        created_at=claimed.created_at,
        language=claimed.locale,
    )
    if not outgoing.recipients:
        async with unit_of_work(sessions) as session:
            await state.record_refused(session, event_id, claimed.token, "the message has no recipients")
        return Delivered(state.Outcome.refused, None, claimed.attempt)
    client = aiosmtplib.SMTP(
        hostname=mailer.server.host,
        port=mailer.server.port,
        use_tls=mailer.server.implicit_tls,
        start_tls=mailer.server.starttls,
        tls_context=mailer.tls_context() if mailer.server.implicit_tls or mailer.server.starttls else None,
        timeout=mailer.server.timeout,
    )
    handed_over = False
    try:
        await client.connect()
        if mailer.server.username:
            await client.login(mailer.server.username, mailer.server.password or "")
        await client.mail(outgoing.sender)
        refused: dict[str, str] = {}
        for recipient in outgoing.recipients:
            try:
                await client.rcpt(recipient)
            except aiosmtplib.SMTPRecipientRefused as error:
                refused[recipient] = f"{error.code} {error.message}"
        if len(refused) == len(outgoing.recipients):
            temporary = any(reason.startswith("4") for reason in refused.values())
            raise _Refused(
                "every recipient was refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()),
                permanent=not temporary,
            )
        async with unit_of_work(sessions) as session:
            if not await state.hand_over(session, event_id, claimed.token, outgoing.message_id, utcnow()):
                raise SendFailed("the claim on this message was lost; another attempt sends it", retryable=True)
        handed_over = True
        await client.data(outgoing.data)
    except _Refused as refusal:
        async with unit_of_work(sessions) as session:
            if refusal.permanent:
                await state.record_refused(session, event_id, claimed.token, str(refusal))
                return Delivered(state.Outcome.refused, None, claimed.attempt)
            await state.release(session, event_id, claimed.token, str(refusal))
        raise SendFailed(str(refusal), retryable=True) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        # The server answered with an error, or the connection failed: it does not have the message (a
        # connection lost while it answered the data is the at-least-once case described above).
        reason = _describe(error, during_data=handed_over)
        async with unit_of_work(sessions) as session:
            await state.release(session, event_id, claimed.token, reason)
        raise SendFailed(reason, retryable=True) from None
    finally:
        client.close()
    note = "refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()) if refused else None
    async with unit_of_work(sessions) as session:
        await state.record_sent(session, event_id, claimed.token, outgoing.message_id, utcnow(), note)
    return Delivered(state.Outcome.sent, outgoing.message_id, claimed.attempt)


class _Refused(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _describe(error: BaseException, *, during_data: bool) -> str:
    phase = "sending the message" if during_data else "before the message was sent"
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"the server answered {error.code} {error.message} ({phase})"
    return f"{type(error).__name__}: {error or 'no answer'} ({phase})"


def mailer_from_settings(settings: Settings) -> Mailer | None:
    """The mailer the settings describe, or None when no SMTP server is configured."""
    server = settings.smtp_server()
    if server is None or settings.smtp_from is None:
        return None
    return Mailer(server=server, sender=parse_from(settings.smtp_from), ca_file=settings.smtp_ca_file)
