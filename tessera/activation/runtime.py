"""What the activation service holds once per process: settings it reads, the signing key, the limiters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

    @property
    def limiter(self) -> FailureLimiter:
        return self.limits.limiter(LIMITER)


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
    )
