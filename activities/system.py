"""Activities about the system itself."""

from __future__ import annotations

import os
import socket

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from tessera import __version__
from tessera.models import Organization, Product
from workflows.system_check import SystemCheckInput, SystemCheckResult


class SystemActivities:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    @activity.defn(name="system.check")
    async def check(self, _check: SystemCheckInput) -> SystemCheckResult:
        """Count catalog and organization rows; read-only, so any retry is harmless."""
        async with self._sessions() as session:
            products = await session.scalar(select(func.count()).select_from(Product)) or 0
            organizations = await session.scalar(select(func.count()).select_from(Organization)) or 0
        return SystemCheckResult(
            worker_identity=f"{os.getpid()}@{socket.gethostname()}",
            tessera_version=__version__,
            product_count=products,
            organization_count=organizations,
        )
