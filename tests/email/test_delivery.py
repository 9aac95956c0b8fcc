"""Sending outbox rows through a real SMTP server (aiosmtpd on 127.0.0.1): once per row, whatever fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.email.delivery import SendFailed, deliver
from tessera.email.state import Outcome
from tessera.models import Event, utcnow
from tests.email.outbox_rows import add_notification, load, mailer
from tests.email.smtp_server import SmtpTestServer, free_port, self_signed, smtp_server


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with smtp_server() as server:
        yield server


async def test_one_message_per_row_with_a_message_id_from_the_row(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer
) -> None:
    event_id = await add_notification(
        sessions, recipients=["jane@acme.example"], subject="Bestellung fertig: 3 x PRO-CAD", body="Grüße\n.\nEnde\n"
    )
    first = await deliver(sessions, mailer(smtp.url()), event_id)
    again = await deliver(sessions, mailer(smtp.url()), event_id)
    assert first.outcome == again.outcome == Outcome.sent
    assert first.message_id == again.message_id == f"<{event_id}@example.com>"
    [received] = smtp.recorder.received
    assert received.sender == "licenses@example.com"
    assert received.recipients == ["jane@acme.example"]
    assert received.message["Message-ID"] == f"<{event_id}@example.com>"
    assert received.message["Subject"] == "Bestellung fertig: 3 x PRO-CAD"
    assert received.message["From"] == "Example Software <licenses@example.com>"
    assert received.message["To"] == "jane@acme.example"
    # A line holding only a dot is not the end of the data.
    assert received.text == "Grüße\n.\nEnde\n"
    row = await load(sessions, event_id)
    assert (row.email_outcome, row.email_send_attempts, row.email_message_id) == ("sent", 1, first.message_id)
    assert row.email_sent_at is not None
    assert row.email_claim_token is None


async def test_several_recipients_do_not_see_each_other(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer
) -> None:
    event_id = await add_notification(sessions, recipients=["a@one.example", "b@two.example"])
    await deliver(sessions, mailer(smtp.url()), event_id)
    [received] = smtp.recorder.received
    assert sorted(received.recipients) == ["a@one.example", "b@two.example"]
    assert "one.example" not in str(received.message["To"])
    assert "two.example" not in str(received.message["To"])


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later", "554 5.3.0 transaction failed"])
async def test_a_failing_server_is_retried_and_the_message_sent_once(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer, reply: str
) -> None:
    event_id = await add_notification(sessions)
    smtp.recorder.replies = [reply, reply]
    for _ in range(2):
        with pytest.raises(SendFailed) as failed:
            await deliver(sessions, mailer(smtp.url()), event_id)
        assert failed.value.retryable
        assert reply.split()[0] in str(failed.value)
    row = await load(sessions, event_id)
    assert row.email_outcome is None
    assert row.email_claim_token is None
    assert row.email_handed_over_at is None
    assert row.email_last_error is not None
    assert reply.split()[0] in row.email_last_error
    delivered = await deliver(sessions, mailer(smtp.url()), event_id)
    assert delivered.outcome == Outcome.sent
    assert len(smtp.recorder.received) == 1
    assert (await load(sessions, event_id)).email_send_attempts == 3


async def test_connection_refused_is_retried(sessions: async_sessionmaker[AsyncSession]) -> None:
    event_id = await add_notification(sessions)
    with pytest.raises(SendFailed) as failed:
        await deliver(sessions, mailer(f"smtp://127.0.0.1:{free_port()}?timeout=2"), event_id)
    assert failed.value.retryable
    row = await load(sessions, event_id)
    assert row.email_outcome is None
    assert row.email_claim_token is None
    assert row.email_last_error is not None
    assert "before the message was sent" in row.email_last_error


async def test_recipients_refused_for_good_are_not_retried(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer
) -> None:
    smtp.recorder.refuse_recipients = {"gone@acme.example": "550 5.1.1 no such user", "busy@acme.example": "452 full"}
    gone = await add_notification(sessions, recipients=["gone@acme.example"])
    assert (await deliver(sessions, mailer(smtp.url()), gone)).outcome == Outcome.refused
    assert (await deliver(sessions, mailer(smtp.url()), gone)).outcome == Outcome.refused
    assert "550" in str((await load(sessions, gone)).email_last_error)
    # A full mailbox (4xx) may have room later: retried.
    busy = await add_notification(sessions, recipients=["busy@acme.example"])
    with pytest.raises(SendFailed) as failed:
        await deliver(sessions, mailer(smtp.url()), busy)
    assert failed.value.retryable
    # Some refused, some accepted: sent to those accepted, the refusals noted.
    mixed = await add_notification(sessions, recipients=["gone@acme.example", "jane@acme.example"])
    assert (await deliver(sessions, mailer(smtp.url()), mixed)).outcome == Outcome.sent
    assert [r.recipients for r in smtp.recorder.received] == [["jane@acme.example"]]
    assert "gone@acme.example" in str((await load(sessions, mixed)).email_last_error)


async def test_no_recipients_is_refused_without_a_connection(sessions: async_sessionmaker[AsyncSession]) -> None:
    event_id = await add_notification(sessions, recipients=[])
    delivered = await deliver(sessions, mailer(f"smtp://127.0.0.1:{free_port()}"), event_id)
    assert delivered.outcome == Outcome.refused


async def test_a_crash_after_the_server_took_the_message_does_not_send_it_again(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer
) -> None:
    """The attempt dies (here: cancelled, as a killed worker stops) after the data went out, before recording."""
    event_id = await add_notification(sessions)
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    def hold() -> None:
        # Runs in the server's thread once it has the message: the sender is stopped before it hears "250".
        loop.call_soon_threadsafe(arrived.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)

    smtp.recorder.on_data = hold
    attempt = asyncio.create_task(deliver(sessions, mailer(smtp.url()), event_id))
    await asyncio.wait_for(arrived.wait(), 10)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    release.set()
    assert len(smtp.recorder.received) == 1
    row = await load(sessions, event_id)
    assert row.email_handed_over_at is not None
    assert row.email_outcome is None
    # While the dead attempt's lease runs, nobody sends: its worker might still be alive.
    with pytest.raises(SendFailed, match="another attempt"):
        await deliver(sessions, mailer(smtp.url()), event_id)
    async with sessions() as session:  # the lease runs out
        await session.execute(
            update(Event).where(Event.id == event_id).values(email_claimed_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    retried = await deliver(sessions, mailer(smtp.url()), event_id)
    assert retried.outcome == Outcome.unconfirmed
    assert retried.message_id == f"<{event_id}@example.com>"
    assert len(smtp.recorder.received) == 1
    row = await load(sessions, event_id)
    assert row.email_outcome == "unconfirmed"
    assert row.email_sent_at == row.email_handed_over_at
    assert "not sent again" in str(row.email_last_error)


async def test_a_claim_left_before_the_hand_over_is_taken_over_after_its_lease(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer
) -> None:
    """An attempt that died while connecting never gave the server anything: the next one sends."""
    event_id = await add_notification(sessions)
    async with sessions() as session:
        await session.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(email_claim_token="dead", email_claimed_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    assert (await deliver(sessions, mailer(smtp.url()), event_id)).outcome == Outcome.sent
    assert len(smtp.recorder.received) == 1


async def test_concurrent_attempts_send_once(sessions: async_sessionmaker[AsyncSession], smtp: SmtpTestServer) -> None:
    """Ten workers on the same two rows at once: one message per row, one claim each, no message twice."""
    rows = [await add_notification(sessions), await add_notification(sessions)]
    attempts = [deliver(sessions, mailer(smtp.url()), event_id) for event_id in rows for _ in range(5)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    sent = [r for r in results if not isinstance(r, BaseException) and r.outcome == Outcome.sent]
    busy = [r for r in results if isinstance(r, SendFailed) and r.retryable]
    assert len(sent) + len(busy) == len(results), results
    # Afterwards every row is sent, each exactly once, by one attempt.
    messages = [received.message["Message-ID"] for received in smtp.recorder.received]
    assert sorted(messages) == sorted(f"<{event_id}@example.com>" for event_id in rows)
    for event_id in rows:
        row = await load(sessions, event_id)
        # Only the attempt that won the claim counts: the others never touched the row.
        assert (row.email_outcome, row.email_send_attempts, row.email_claim_token) == ("sent", 1, None)


async def test_starttls_with_a_login_against_a_self_signed_certificate(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    context, ca_file = self_signed(tmp_path)
    with smtp_server(tls=context, logins={"tessera": "s3cret pass"}) as server:
        url = server.url(query="starttls=true&timeout=5", credentials="tessera:s3cret%20pass@")
        event_id = await add_notification(sessions)
        assert (await deliver(sessions, mailer(url, ca_file), event_id)).outcome == Outcome.sent
        assert len(server.recorder.received) == 1
        # A certificate the client does not trust: nothing is sent, and it is retried (the operator fixes it).
        other = await add_notification(sessions)
        with pytest.raises(SendFailed, match="before the message was sent") as failed:
            await deliver(sessions, mailer(url), other)
        assert failed.value.retryable
        # A wrong password neither.
        wrong = server.url(query="starttls=true&timeout=5", credentials="tessera:guess@")
        with pytest.raises(SendFailed, match="535"):
            await deliver(sessions, mailer(wrong, ca_file), other)
        # Without STARTTLS the server refuses to go on: the message is not sent in clear.
        with pytest.raises(SendFailed):
            await deliver(sessions, mailer(server.url(), ca_file), other)
        assert len(server.recorder.received) == 1
