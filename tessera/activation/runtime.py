"""What the activation service holds once per process: settings it reads, the signing key, the limiters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tessera.activation.keys import SigningKeys
from tessera.activation.limits import FailureLimiter, FailureLimits, storage_for
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
    """The sessions' engine (and pool) in autocommit, for refresh's one statement (its own transaction)."""

    @property
    def limiter(self) -> FailureLimiter:
        return self.limits.limiter(LIMITER)


def refresh_engine(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The factory's engine (the same pool), its connections in autocommit: no BEGIN and no COMMIT round trip."""
    engine = session_factory.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
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
    )
