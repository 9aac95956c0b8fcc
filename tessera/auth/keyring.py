"""The deployment's secrets: the newest one hashes and encrypts everything new, earlier ones still verify.

Rotating `TESSERA_SECRET_KEY` moves the old value to `TESSERA_PREVIOUS_SECRET_KEYS`; API keys and ticket
codes made under it keep working. Each secret is known by a version, a short fingerprint derived from the
secret itself, so no one has to number secrets by hand and a typo cannot make two secrets share a version.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def secret_version(secret: bytes) -> str:
    """Eight hex digits naming a secret; derived one-way, so they reveal nothing about it."""
    return hmac.new(bytes(secret), b"tessera secret version", hashlib.sha256).hexdigest()[:8]


class KeyRing(bytes):
    """The newest secret, wherever plain `bytes` are expected, carrying the earlier ones along.

    A `bytes` subclass on purpose: code that knows a single secret keeps hashing with the newest one
    unchanged, while code that verifies (API keys, ticket codes) asks `as_ring(...)` for every secret.
    """

    _previous: tuple[bytes, ...]

    def __new__(cls, current: bytes, previous: Iterable[bytes] = ()) -> KeyRing:
        if not current:
            raise ValueError("the secret key is empty")
        ring = super().__new__(cls, bytes(current))
        seen = {bytes(current)}
        earlier: list[bytes] = []
        for secret in previous:
            if secret and bytes(secret) not in seen:
                seen.add(bytes(secret))
                earlier.append(bytes(secret))
        ring._previous = tuple(earlier)
        return ring

    @property
    def current(self) -> bytes:
        return bytes(self)

    @property
    def version(self) -> str:
        """The version of the newest secret, stored beside every hash made now."""
        return secret_version(self.current)

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Newest first: the order in which verification tries them."""
        return (self.current, *self._previous)

    def by_version(self, version: str) -> bytes | None:
        return next((secret for secret in self.secrets if secret_version(secret) == version), None)

    def __repr__(self) -> str:
        # Never print a secret, not even in a traceback or an f-string.
        return f"KeyRing(version={self.version}, previous={len(self._previous)})"

    __str__ = __repr__


def as_ring(secret: bytes) -> KeyRing:
    """A ring for a single secret, or the ring itself."""
    return secret if isinstance(secret, KeyRing) else KeyRing(secret)
