"""Starting EmailDeliveryWorkflow for outbox notifications: idempotent per row, bounded per call."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from tessera.db import unit_of_work
from tessera.email import state
from tessera.models import Event, utcnow
from workflows.email_models import EmailInput, EmailResult

EMAIL_WORKFLOW = "EmailDeliveryWorkflow"
DEFAULT_TASK_QUEUE = "tessera"
MAX_BATCH = 500


def email_workflow_id(event_id: uuid.UUID | str) -> str:
    return f"email-{event_id}"


async def dispatch_notification(
    client: Client, event_id: uuid.UUID | str, *, task_queue: str = DEFAULT_TASK_QUEUE
) -> WorkflowHandle[object, EmailResult]:
    """Start the delivery of one outbox notification; starting it again finds the same workflow, never a second.

    A run that completed is not started again (its row is sent or refused); one that failed (it gave up after
    days of retries) is, so dispatching a row again retries it.
    """
    workflow_id = email_workflow_id(event_id)
    with contextlib.suppress(WorkflowAlreadyStartedError):
        return await client.start_workflow(
            EMAIL_WORKFLOW,
            EmailInput(event_id=str(event_id)),
            id=workflow_id,
            task_queue=task_queue,
            result_type=EmailResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            static_summary=f"e-mail of outbox notification {event_id}",
        )
    return client.get_workflow_handle(workflow_id, result_type=EmailResult)


async def dispatch_pending_notifications(
    session_factory: async_sessionmaker[AsyncSession],
    client: Client,
    limit: int,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
) -> int:
    """Start the delivery of up to `limit` notifications not dispatched yet, oldest first; returns how many.

    A row is marked dispatched only after its start succeeded, so a crash in between starts it again next time,
    which finds the same workflow. Several relays at once are harmless for the same reason.
    """
    if not 1 <= limit <= MAX_BATCH:
        raise ValueError(f"limit must be 1 to {MAX_BATCH}")
    async with session_factory() as session:
        pending = await state.undispatched(session, limit)
    for event_id in pending:
        await dispatch_notification(client, event_id, task_queue=task_queue)
    if pending:
        async with unit_of_work(session_factory) as session:
            await state.mark_dispatched(session, pending, utcnow())
    return len(pending)


def notification_dispatcher(
    session_factory: async_sessionmaker[AsyncSession], *, task_queue: str = DEFAULT_TASK_QUEUE
) -> Callable[[Client, uuid.UUID], Awaitable[None]]:
    """The outbox relay's dispatcher of notifications: start the row's delivery and mark it dispatched for e-mail.

    A row that has an outcome already needs no workflow: rows written before Tessera sent e-mail are `skipped`
    (and were never handed to the relay), and one sent or refused is done. The mark is what `tessera outbox` and
    the dev page read to tell a queued message from one whose delivery runs.
    """

    async def dispatch_email(client: Client, event_id: uuid.UUID) -> None:
        async with session_factory() as session:
            row = await session.get(Event, event_id)
            if row is None or row.email_outcome is not None:
                return
        await dispatch_notification(client, event_id, task_queue=task_queue)
        async with unit_of_work(session_factory) as session:
            await state.mark_dispatched(session, [event_id], utcnow())

    return dispatch_email
