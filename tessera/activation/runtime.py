"""What the activation service holds once per process: settings it reads, the signing key, the limiters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tessera.activation.keys import SigningKeys
from tessera.activation.limits import FailureLimiter, FailureLimits, storage_for
from tessera.db import create_engine
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
    """Connections in autocommit, for refresh's one statement (its own transaction); see `refresh_engine`."""
    owns_refresh_engine: bool = False

    @property
    def limiter(self) -> FailureLimiter:
        return self.limits.limiter(LIMITER)

    async def close(self) -> None:
        """Release what the runtime opened itself (the sessions' engine belongs to whoever made it)."""
        if self.owns_refresh_engine:
            await self.refresh_engine.dispose()


def refresh_engine(session_factory: async_sessionmaker[AsyncSession]) -> tuple[AsyncEngine, bool]:
    """Connections in autocommit for refresh, and whether they are a pool of their own (to dispose of).

    A pool of its own on the same database, in autocommit for good. PostgreSQL: without the sessions' ping before
    every checkout, a round trip as long as the statement's own; refresh retries its statement once on a dead
    connection instead. SQLite: with the same pragmas, because aiosqlite switches a connection in a trip to its
    thread, and back again, and rolls back, on every return. An in-memory SQLite database (tests) is one
    connection's: the sessions' engine switched to autocommit per connection.
    """
    engine = session_factory.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    if engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:"):
        return create_engine(engine.url.render_as_string(hide_password=False), autocommit=True), True
    return engine.execution_options(isolation_level="AUTOCOMMIT"), False


def activation_runtime(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], secret_key: bytes
) -> ActivationRuntime:
    url = settings.rate_limit_url.get_secret_value() if settings.rate_limit_url else None
    storage = storage_for(url, settings.rate_limit_prefix)
    refreshes, owned = refresh_engine(session_factory)
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
        refresh_engine=refreshes,
        owns_refresh_engine=owned,
    )
