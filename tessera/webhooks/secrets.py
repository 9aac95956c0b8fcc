"""Signing secrets: `whsec_` + base64 of 32 random bytes, shown once, stored only encrypted.

Encrypted with AES-GCM under a key derived (HKDF) from the deployment secret ring, with the endpoint id as
authenticated data, so a copy moved to another endpoint's row does not open. Like ticket codes, a secret made
under an older deployment secret still opens after a rotation of `TESSERA_SECRET_KEY`.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera.auth.keyring import as_ring

PREFIX = "whsec_"
SECRET_BYTES = 32
_NONCE = 12


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera webhook secrets", info=b"encrypt v1").derive(
        bytes(secret_key)
    )


def encrypt_secret(secret_key: bytes, endpoint_id: uuid.UUID, secret: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(_key(secret_key)).encrypt(nonce, secret.encode(), endpoint_id.bytes)


def decrypt_secret(secret_key: bytes, endpoint_id: uuid.UUID, blob: bytes) -> str:
    """Open with whichever secret of the ring made it."""
    for candidate in as_ring(secret_key).secrets:
        try:
            return AESGCM(_key(candidate)).decrypt(blob[:_NONCE], blob[_NONCE:], endpoint_id.bytes).decode()
        except InvalidTag:
            continue
    raise InvalidTag("no secret of the key ring opens this webhook secret")
