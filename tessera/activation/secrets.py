"""Activation secrets: `tsa_` + 256 random bits, shown once, stored only as an HMAC-SHA256 under the deployment
secret; they verify under every secret of the ring, so a rotation of `TESSERA_SECRET_KEY` keeps them working."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tessera.auth.keyring import as_ring

PREFIX = "tsa_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret_key: bytes, secret: str) -> bytes:
    return hmac.new(as_ring(secret_key).current, secret.encode(), hashlib.sha256).digest()


def secret_matches(secret_key: bytes, secret: str, stored: bytes) -> bool:
    """Compared in constant time under each secret of the ring."""
    found = False
    for candidate in as_ring(secret_key).secrets:
        digest = hmac.new(candidate, secret.encode(), hashlib.sha256).digest()
        found |= hmac.compare_digest(digest, stored)
    return found


def candidate_hashes(secret_key: bytes, secret: str) -> list[bytes]:
    """The secret's hash under each secret of the ring: the stored hash is one of them if the secret is right."""
    return [hmac.new(candidate, secret.encode(), hashlib.sha256).digest() for candidate in as_ring(secret_key).secrets]
