"""The outbox relay: hands events written to the outbox (`event` table) on to whatever delivers them.

Activities write events in the same transaction as the business change they announce (the transactional
outbox); the relay, a loop in every worker process, picks events not yet dispatched, calls the dispatcher
registered for their kind and then marks them dispatched. A dispatcher must be idempotent: a relay that dies
between dispatching and marking, or two relays picking the same event, dispatch it twice. The webhook
dispatcher is: it records one delivery row per (event, endpoint) and starts the workflow that row names with
USE_EXISTING and REJECT_DUPLICATE, so a second dispatch finds the first one's run, running or finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from tessera.db import unit_of_work
from tessera.models import EventKind
from tessera.settings import Settings
from tessera.webhooks.deliveries import DeliveryStart, mark_dispatched, prepare_dispatch, undispatched_events
from tessera.webhooks.status import DeliveryStatus
from workflows import search_attributes as sa
from workflows.client_ops import RPC_TIMEOUT
from workflows.email_dispatch import notification_dispatcher
from workflows.webhook_models import DeliveryInput, RetrySchedule

log = logging.getLogger(__name__)

DELIVERY_WORKFLOW = "WebhookDeliveryWorkflow"
"""Started by name, so that the API does not import workflow code."""
BATCH = 100

Dispatcher = Callable[[Client, uuid.UUID], Awaitable[None]]
"""`await dispatcher(client, event_id)`: hand one event on; idempotent; raises to have it tried again later."""


def retry_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        retry_for_seconds=settings.webhook_retry_for.total_seconds(),
        base_seconds=settings.webhook_retry_base.total_seconds(),
        max_interval_seconds=settings.webhook_retry_max_interval.total_seconds(),
        retry_after_max_seconds=settings.webhook_retry_after_max.total_seconds(),
    )


async def start_delivery(
    client: Client, task_queue: str, start: DeliveryStart, schedule: RetrySchedule
) -> WorkflowHandle[Any, Any] | None:
    """Start the delivery's workflow; one running under this id is returned, one that ran already gives None."""
    summary = f"event {start.event_id} to webhook endpoint {start.endpoint_id}" + (
        f", redelivery {start.round}" if start.round else ""
    )
    try:
        return await client.start_workflow(
            DELIVERY_WORKFLOW,
            DeliveryInput(
                delivery_id=str(start.delivery_id),
                event_id=str(start.event_id),
                endpoint_id=str(start.endpoint_id),
                organization_id=str(start.organization_id),
                schedule=schedule,
            ),
            id=start.workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CUSTOMER, str(start.organization_id)),
                    SearchAttributePair(sa.STATUS, DeliveryStatus.pending.value),
                ]
            ),
            memo={"summary": summary},
            static_summary=summary,
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:  # closed already (REJECT_DUPLICATE): it ran, which is all we need
        return None


def webhook_dispatcher(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Dispatcher:
    """The dispatcher of webhook events: a delivery workflow per matching endpoint."""
    schedule = retry_schedule(settings)

    async def dispatch_webhook(client: Client, event_id: uuid.UUID) -> None:
        async with unit_of_work(sessions) as session:
            starts = await prepare_dispatch(session, event_id)
        # Committed before any call to Temporal: never a database lock held across the network.
        for start in starts:
            await start_delivery(client, settings.task_queue, start, schedule)

    return dispatch_webhook


class OutboxRelay:
    """Dispatches undispatched outbox events, kind by kind, through the dispatchers registered for them."""

    def __init__(
        self,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float = 1.0,
        batch: int = BATCH,
        dispatchers: dict[EventKind, Dispatcher] | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._interval = interval_seconds
        self._batch = batch
        self._dispatchers: dict[str, Dispatcher] = {str(kind): d for kind, d in (dispatchers or {}).items()}

    def register(self, kind: EventKind, dispatcher: Dispatcher) -> None:
        self._dispatchers[str(kind)] = dispatcher

    async def run_once(self) -> int:
        """Dispatch at most one batch; returns how many events were marked dispatched."""
        async with self._sessions() as session:
            pending = await undispatched_events(session, list(self._dispatchers), self._batch)
        done = 0
        for event_id, kind in pending:
            try:
                await self._dispatchers[kind](self._client, event_id)
            except Exception:
                # Left undispatched: the next round tries it again (Temporal or the database may be back).
                log.exception("dispatching %s event %s failed; it will be tried again", kind, event_id)
                continue
            async with unit_of_work(self._sessions) as session:
                await mark_dispatched(session, event_id)
            done += 1
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: a batch, then a pause unless the batch was full."""
        await run_rounds(self.run_once, self._batch, self._interval, stop, "the outbox relay")


async def run_rounds(
    run_once: Callable[[], Awaitable[int]], batch: int, interval: float, stop: asyncio.Event, name: str
) -> None:
    """A relay's loop until `stop` is set: a round, then a pause unless the round was full; a failed round is
    logged and the next one tries again (what it left undone is still recorded)."""
    while not stop.is_set():
        try:
            full = await run_once() >= batch
        except Exception:
            log.exception("%s failed a round; it goes on", name)
            full = False
        if not full:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def build_relay(client: Client, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> OutboxRelay:
    """The relay with every dispatcher Tessera has; notifications go out as e-mail only when SMTP is configured
    (without it they stay in the outbox, where `tessera outbox` and the dev page show them)."""
    dispatchers: dict[EventKind, Dispatcher] = {EventKind.webhook: webhook_dispatcher(sessions, settings)}
    if settings.smtp_url is not None:
        dispatchers[EventKind.notification] = notification_dispatcher(sessions, task_queue=settings.task_queue)
    return OutboxRelay(
        client, sessions, interval_seconds=settings.outbox_relay_interval_seconds, dispatchers=dispatchers
    )
