"""The activity that sends one outbox notification by e-mail (tessera/email/delivery.py does the work)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tessera.email.delivery import Mailer, SendFailed, deliver
from tessera.errors import TesseraError
from workflows.email_models import EmailInput, EmailResult

HEARTBEAT_EVERY_SECONDS = 2.0


class EmailActivities:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], mailer: Mailer | None) -> None:
        self._sessions = session_factory
        self._mailer = mailer

    @activity.defn(name="email.send")
    async def send(self, request: EmailInput) -> EmailResult:
        """Send one outbox notification at most once; key: the outbox row (claimed, then handed over)."""
        if self._mailer is None:
            # Retried: once a worker with TESSERA_SMTP_URL runs, the message goes out.
            raise ApplicationError("no SMTP server is configured on this worker (TESSERA_SMTP_URL)", type="smtp-off")
        heartbeat = asyncio.create_task(_heartbeat())
        try:
            delivered = await asyncio.wait_for(
                deliver(self._sessions, self._mailer, uuid.UUID(request.event_id)), self._mailer.attempt_budget
            )
        except SendFailed as error:
            raise ApplicationError(str(error), type="smtp-failed", non_retryable=not error.retryable) from None
        except TesseraError as error:
            raise ApplicationError(error.detail, type=error.code, non_retryable=True) from None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return EmailResult(event_id=request.event_id, outcome=delivered.outcome.value, message_id=delivered.message_id)


async def _heartbeat() -> None:
    # A killed worker stops heartbeating, so its attempt is retried within the heartbeat timeout, not minutes later.
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
