"""Cloud container credentials: `tcc_` + 256 random bits, shown once in a credential file, stored as a keyed hash.

The hash is an HMAC-SHA256 under the deployment secret (as for API keys); a credential hashed under an earlier
secret still opens its container after a secret rotation. A credential names no container: the hash finds it, and
the container id the caller sends must match, so a credential of one container never opens another.
"""

from __future__ import annotations

import hmac
import secrets

from tessera.apikeys import keyed_hash
from tessera.auth.keyring import as_ring

CREDENTIAL_PREFIX = "tcc_"
MAX_CREDENTIAL_LENGTH = 100
"""Longer than any credential issued here; longer input is refused before it is hashed."""


def new_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def credential_hash(secret_key: bytes, credential: str) -> tuple[bytes, str]:
    """The hash under the newest secret, with that secret's version."""
    ring = as_ring(secret_key)
    return keyed_hash(ring.current, credential), ring.version


def candidate_hashes(secret_key: bytes, credential: str) -> list[bytes]:
    """The hash under every secret of the ring, newest first (what a stored hash may be)."""
    if not credential.startswith(CREDENTIAL_PREFIX) or len(credential) > MAX_CREDENTIAL_LENGTH:
        return []
    return [keyed_hash(secret, credential) for secret in as_ring(secret_key).secrets]


def matches(secret_key: bytes, credential: str, stored: bytes) -> bool:
    """Whether `credential` is the one whose hash is `stored` (compared in constant time)."""
    return any(hmac.compare_digest(candidate, stored) for candidate in candidate_hashes(secret_key, credential))
