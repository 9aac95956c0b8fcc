"""Activities of the recovery workflow; thin, idempotent on the recovery's row (its status says what was done)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.orders import business_failures
from tessera.activation import recovery
from tessera.db import unit_of_work
from workflows.recovery_models import RecoveryRef


class RecoveryActivities:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    @activity.defn(name="recovery.recover")
    async def recover(self, ref: RecoveryRef) -> str:
        """Free the lost activation's slot as `recovered`; key: the recovery (a repeat changes nothing)."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            return await recovery.apply_recovery(session, uuid.UUID(ref.recovery_id), ref.at)

    @activity.defn(name="recovery.reject")
    async def reject(self, ref: RecoveryRef) -> str:
        """End a rejected recovery, the activation untouched; key: the recovery (a repeat changes nothing)."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            return await recovery.reject_recovery(session, uuid.UUID(ref.recovery_id), ref.at)

    def all(self) -> list[Any]:
        return [self.recover, self.reject]
