"""The first-activation relay: sends every recorded first activation to its subscription's workflow until
Temporal took the signal.

The activation's transaction records the hand-over (`tessera.activation.handover`) and the API signals right
after the commit; the relay, a loop in every worker process next to the outbox relay, covers what that signal
missed: Temporal unreachable at that moment, or the API process gone between the commit and the signal. A
row is marked once Temporal accepted the signal (from then on it is in the workflow's history), once the
subscription no longer waits (it was anchored, by this or an earlier signal, or revoked), or when the workflow
does not exist: one not started yet reads the row when it begins. The workflow anchors once however many
signals arrive, so relays racing (several workers) or repeating a round after a crash change nothing.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tessera.activation import handover
from tessera.db import unit_of_work
from tessera.models import SubscriptionStatus
from workflows.outbox_relay import run_rounds
from workflows.subscription_ops import deliver_first_activation

log = logging.getLogger(__name__)

BATCH = 100


class FirstActivationRelay:
    """Signals unsignalled first activations, oldest first, and marks them signalled."""

    def __init__(
        self,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float = 1.0,
        batch: int = BATCH,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._interval = interval_seconds
        self._batch = batch

    async def run_once(self) -> int:
        """Hand on at most one batch; returns how many rows were marked signalled."""
        async with self._sessions() as session:
            waiting = await handover.unsignalled(session, self._batch)
        done = 0
        for row in waiting:
            if row.status == SubscriptionStatus.pending:
                try:
                    await deliver_first_activation(self._client, row.subscription_id, row.activated_at)
                except Exception:
                    # Left unmarked: the next round sends it again (Temporal may be back by then).
                    log.warning("could not signal subscription %s of its first activation", row.subscription_id)
                    continue
            async with unit_of_work(self._sessions) as session:
                await handover.mark_signalled(session, row.subscription_id)
            done += 1
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: a batch, then a pause unless the batch was full."""
        await run_rounds(self.run_once, self._batch, self._interval, stop, "the first-activation relay")
