"""Ticket codes: 140 random bits in Crockford Base32, `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.

Stored as an HMAC-SHA256 (for lookup) and an AES-GCM copy (so entitled admins can show it again), both under
keys derived from the deployment secret with HKDF, one key per purpose. New codes use the newest secret of the
key ring; lookups and decryption try every secret of the ring, so codes survive a rotation of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera.auth.keyring import as_ring
from tessera.errors import FieldIssue, InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 28  # 28 x 5 = 140 bits: above the 128 a bearer credential needs, and seven groups of four to type
GROUP = 4
# Crockford's decoding: people mistype these, and the code still means the same.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_NONCE = 12


def _derive(secret_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera ticket codes", info=purpose).derive(
        bytes(secret_key)
    )


def generate_code() -> str:
    number = secrets.randbits(CODE_CHARS * 5)
    chars = [ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS))]
    return "-".join("".join(chars[i : i + GROUP]) for i in range(0, CODE_CHARS, GROUP))


def normalize_code(code: str) -> str:
    """The canonical form (upper case, no separators), or InvalidInput naming `code`."""
    compact = code.upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(compact) != CODE_CHARS or any(char not in ALPHABET for char in compact):
        raise InvalidInput(
            "this is not a ticket code", issues=[FieldIssue("code", f"{CODE_CHARS} letters and digits in groups")]
        )
    return compact


def code_hash(secret_key: bytes, code: str) -> bytes:
    """The lookup hash under the newest secret (the one stored for new tickets)."""
    return hmac.new(_derive(secret_key, b"hash v1"), normalize_code(code).encode(), hashlib.sha256).digest()


def code_hashes(secret_key: bytes, code: str) -> list[bytes]:
    """The lookup hash under every secret of the ring, newest first: a stored ticket matches one of them."""
    return [code_hash(secret, code) for secret in as_ring(secret_key).secrets]


def encrypt_code(secret_key: bytes, ticket_id: uuid.UUID, code: str) -> bytes:
    """Nonce + ciphertext; the ticket id is authenticated data, so a copy moved to another row will not open."""
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(_derive(secret_key, b"encrypt v1")).encrypt(nonce, code.encode(), ticket_id.bytes)


def decrypt_code(secret_key: bytes, ticket_id: uuid.UUID, blob: bytes) -> str:
    """Open the copy with whichever secret of the ring made it; AES-GCM tells a wrong key by its tag."""
    for secret in as_ring(secret_key).secrets:
        try:
            return (
                AESGCM(_derive(secret, b"encrypt v1")).decrypt(blob[:_NONCE], blob[_NONCE:], ticket_id.bytes).decode()
            )
        except InvalidTag:
            continue
    raise InvalidTag("no secret of the key ring opens this ticket code")
