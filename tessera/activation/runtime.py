"""What the activation service holds once per process: settings it reads, the signing key, the limiters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tessera.activation.keys import SigningKeys
from tessera.activation.limits import FailureLimiter, FailureLimits, storage_for
from tessera.db import is_sqlite
from tessera.settings import Settings

LIMITER = "activation"
"""The limiter of failed ticket-code and activation-secret look-ups."""


@dataclass
class ActivationRuntime:
    session_factory: async_sessionmaker[AsyncSession]
    secret_key: bytes
    keys: SigningKeys
    limits: FailureLimits
    issuer: str
    certificate_ttl: timedelta
    moves: int
    moves_period: timedelta
    refresh_engine: AsyncEngine
    """The sessions' engine (and pool) for refresh's one statement: in autocommit on PostgreSQL, as is on SQLite."""
    serialize_writes: bool = False
    """SQLite: this process's hot writes take turns instead of meeting SQLite's busy handler (which sleeps)."""
    _writes: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def limiter(self) -> FailureLimiter:
        return self.limits.limiter(LIMITER)

    @contextlib.asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """Around a short unit of work that writes: on SQLite one at a time in this process, else no wait.

        SQLite has one writer; concurrent writers that meet it wait in its busy handler, which sleeps in steps of
        up to 100 ms, and that makes the slowest refreshes slower than a queue would.
        """
        if not self.serialize_writes:
            yield
            return
        async with self._writes:
            yield


def refresh_engine(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The factory's engine; on PostgreSQL its connections in autocommit (no BEGIN, no COMMIT round trip).

    On SQLite as is: aiosqlite switches a connection's isolation level in a trip to its thread, and back again on
    its return to the pool, where one COMMIT costs one trip.
    """
    engine = session_factory.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def activation_runtime(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], secret_key: bytes
) -> ActivationRuntime:
    url = settings.rate_limit_url.get_secret_value() if settings.rate_limit_url else None
    storage = storage_for(url, settings.rate_limit_prefix)
    return ActivationRuntime(
        session_factory=session_factory,
        secret_key=secret_key,
        keys=SigningKeys(session_factory, secret_key, settings.certificate_ttl),
        limits=FailureLimits(
            storage, settings.activation_failure_limit_client, settings.activation_failure_limit_global
        ),
        issuer=settings.certificate_issuer or settings.portal_url,
        certificate_ttl=settings.certificate_ttl,
        moves=settings.activation_moves,
        moves_period=settings.activation_moves_period,
        refresh_engine=refresh_engine(session_factory),
        serialize_writes=is_sqlite(settings.resolved_database_url),
    )
