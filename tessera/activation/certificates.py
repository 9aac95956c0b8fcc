"""License certificates: compact JWS (RFC 7515), EdDSA over Ed25519, `typ: license+jwt`, verifiable offline.

Claims: `iss`, `sub` (license id), `aud` (container id), `iat`, `exp` (the refresh deadline: the configured
certificate lifetime, never beyond the license's own end while it is active), `jti`, `license` (product,
modules, fields, status, `expires_at`, `activation_id`, `seq`) and, for an offline update file, `nonce`.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import SecurityWarning

from tessera.activation.keys import ALGORITHM, Signer
from tessera.models import LicenseStatus

TYPE = "license+jwt"

# RFC 9864 names the same Ed25519 signature "Ed25519"; certificates keep "EdDSA" (RFC 8037), which every JOSE
# library verifies today.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


@dataclass(frozen=True)
class LicenseFacts:
    """What a certificate says about the license, read in one statement by whoever issues it."""

    license_id: uuid.UUID
    product_code: str
    modules: list[Any]
    fields: dict[str, Any]
    license_status: str
    ticket_status: str
    expires_at: datetime | None


def effective_status(facts: LicenseFacts, now: datetime) -> str:
    """Revoked wins (a revoked ticket revokes its license), then an entitlement end in the past."""
    if facts.license_status == LicenseStatus.revoked or facts.ticket_status == "revoked":
        return LicenseStatus.revoked
    if facts.license_status == LicenseStatus.expired or (facts.expires_at is not None and facts.expires_at <= now):
        return LicenseStatus.expired
    return LicenseStatus.active


def certificate_exp(facts: LicenseFacts, now: datetime, ttl: timedelta) -> datetime:
    """The refresh deadline: the lifetime, cut at the license's end while that is still ahead."""
    exp = now + ttl
    if facts.expires_at is not None and now < facts.expires_at < exp:
        return facts.expires_at
    return exp


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def license_claims(
    facts: LicenseFacts,
    *,
    issuer: str,
    audience: str,
    activation_id: uuid.UUID,
    seq: int,
    now: datetime,
    exp: datetime,
    nonce: str | None = None,
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(facts.license_id),
        "aud": audience,
        "iat": _epoch(now),
        "exp": _epoch(exp),
        "jti": uuid.uuid4().hex,
        "license": {
            "product": facts.product_code,
            "modules": list(facts.modules),
            "fields": dict(facts.fields),
            "status": effective_status(facts, now),
            "expires_at": facts.expires_at.isoformat() if facts.expires_at else None,
            "activation_id": str(activation_id),
            "seq": seq,
        },
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=16)
def _protected_header(kid: str) -> bytes:
    """The JOSE header of every certificate a key signs, encoded once per key."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": TYPE}
    return _b64url(json.dumps(header, separators=(",", ":")).encode())


def sign_certificate(signer: Signer, claims: dict[str, Any]) -> str:
    """The compact JWS of `claims` under the signer's key (RFC 7515 compact serialization: header.payload.signature)."""
    payload = _b64url(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode())
    signing_input = _protected_header(signer.kid) + b"." + payload
    private = signer.private.private_key
    if not isinstance(private, Ed25519PrivateKey):
        raise TypeError("a signing key is an Ed25519 private key")
    return (signing_input + b"." + _b64url(private.sign(signing_input))).decode("ascii")
