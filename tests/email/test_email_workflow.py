"""EmailDeliveryWorkflow on a real Temporal dev server with the real activity, database and SMTP server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.settings import REPO_ROOT, Settings
from tests.conftest import TEST_SECRET
from tests.email.outbox_rows import add_notification, load
from tests.email.smtp_server import smtp_server
from workflows.email_dispatch import dispatch_notification, dispatch_pending_notifications, email_workflow_id
from workflows.worker import build_worker


def _settings(settings: Settings, env: WorkflowEnvironment, smtp_url: str) -> Settings:
    return settings.model_copy(
        update={
            "temporal_address": env.client.service_client.config.target_host,
            "task_queue": f"email-{uuid.uuid4().hex[:12]}",
            "smtp_url": SecretStr(smtp_url),
            "smtp_from": "Example Software <licenses@example.com>",
        }
    )


async def test_pending_notifications_are_sent_once_each_with_retries(
    dev_env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with smtp_server() as smtp:
        configured = _settings(settings, dev_env, smtp.url())
        rows = [await add_notification(sessions, recipients=[f"user{n}@acme.example"]) for n in range(3)]
        # The server is briefly unwell: the first message it is handed is refused with a temporary error.
        smtp.recorder.replies = ["451 4.3.0 try again later"]
        queue = configured.task_queue
        async with build_worker(dev_env.client, configured, sessions):
            assert await dispatch_pending_notifications(sessions, dev_env.client, 2, task_queue=queue) == 2
            assert await dispatch_pending_notifications(sessions, dev_env.client, 10, task_queue=queue) == 1
            assert await dispatch_pending_notifications(sessions, dev_env.client, 10, task_queue=queue) == 0
            results = [
                await asyncio.wait_for(dev_env.client.get_workflow_handle(email_workflow_id(row)).result(), 60)
                for row in rows
            ]
            # Dispatching a row again finds its workflow, which sent it already.
            again = await dispatch_notification(dev_env.client, rows[0], task_queue=queue)
            assert (await again.result()).outcome == "sent"
    assert [result["outcome"] for result in results] == ["sent", "sent", "sent"]
    assert sorted(received.recipients[0] for received in smtp.recorder.received) == [
        "user0@acme.example",
        "user1@acme.example",
        "user2@acme.example",
    ]
    attempts = [(await load(sessions, row)).email_send_attempts for row in rows]
    assert sorted(attempts) == [1, 1, 2]
    for row in rows:
        assert (await load(sessions, row)).email_dispatched_at is not None


def _worker(
    env: WorkflowEnvironment, database_url: str, queue: str, smtp_url: str, tmp: Path
) -> subprocess.Popen[bytes]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
    environ.update(
        TESSERA_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TESSERA_DATABASE_URL=database_url,
        TESSERA_SECRET_KEY=TEST_SECRET.decode(),
        TESSERA_CONFIG_DIR=str(REPO_ROOT / "config"),
        TESSERA_TASK_QUEUE=queue,
        TESSERA_VAR_DIR=str(tmp),
        TESSERA_LOG_LEVEL="warning",
        TESSERA_SMTP_URL=smtp_url,
        TESSERA_SMTP_FROM="licenses@example.com",
    )
    return subprocess.Popen([sys.executable, "-m", "tessera.cli", "worker"], env=environ)


async def test_a_worker_killed_after_the_server_took_the_message_does_not_send_it_again(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    """SIGKILL while the server holds the message and before the worker heard its answer: one message, ever."""
    from tessera.db import create_engine, create_session_factory

    engine = create_engine(sqlite_url)
    sessions = create_session_factory(engine)
    queue = f"email-crash-{uuid.uuid4().hex[:12]}"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with smtp_server() as smtp:

            def kill_the_sender() -> None:
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(10)

            smtp.recorder.on_data = kill_the_sender
            url = smtp.url(query="timeout=2")
            event_id = await add_notification(sessions)
            workers.append(_worker(dev_env, sqlite_url, queue, url, tmp_path))
            handle = await dispatch_notification(dev_env.client, event_id, task_queue=queue)
            for _ in range(600):
                if workers[0].poll() is not None:
                    break
                await asyncio.sleep(0.05)
            assert workers[0].returncode == -signal.SIGKILL, "the worker was never killed by the server"
            workers.append(_worker(dev_env, sqlite_url, queue, url, tmp_path))
            result = await asyncio.wait_for(handle.result(), 90)
            assert len(smtp.recorder.received) == 1
        assert result.outcome == "unconfirmed"
        row = await load(sessions, event_id)
        assert row.email_send_attempts == 1
        assert row.email_outcome == "unconfirmed"
        assert row.email_message_id == f"<{event_id}@example.com>"
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
        await engine.dispose()
