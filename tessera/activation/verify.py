"""Verifying a license certificate the way the vendor's software does: against a JWKS, with nothing else.

Each way a certificate can fail has its own exit code, so scripts can tell them apart (`tessera verify`):
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, DecodeError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from tessera.activation.certificates import TYPE
from tessera.activation.keys import ALGORITHM


class Outcome(IntEnum):
    """`tessera verify`'s exit codes."""

    valid = 0
    unreadable = 2
    """The certificate or the JWKS is not what it should be (not a compact JWS, not a JWKS, wrong `typ`)."""
    bad_signature = 3
    unknown_key = 4
    """No key of the JWKS has the certificate's `kid` (a key retired long ago, or another deployment's)."""
    wrong_audience = 5
    """Issued for another container."""
    expired = 6
    """Past its `exp`: the software must refresh it."""
    revoked = 7
    """Validly signed, saying the license is revoked."""
    license_expired = 8
    """Validly signed, saying the license's entitlement has ended."""


class CertificateRefused(Exception):
    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class VerifiedCertificate:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def license(self) -> dict[str, Any]:
        found: dict[str, Any] = self.claims.get("license", {})
        return found


def read_jwks(text: str) -> KeySet:
    try:
        return KeySet.import_key_set(json.loads(text))
    except (ValueError, TypeError, KeyError, JoseError) as error:
        raise CertificateRefused(Outcome.unreadable, f"not a JWKS: {error}") from None


def verify_certificate(
    certificate: str,
    keys: KeySet,
    *,
    audience: str | None = None,
    now: float | None = None,
    check_status: bool = True,
) -> VerifiedCertificate:
    """The certificate's header and claims if it is valid for `audience`; CertificateRefused (with its Outcome).

    `check_status=False` accepts a validly signed certificate whatever license status it states (for storing it).
    """
    try:
        header = dict(extract_compact(certificate.strip().encode()).headers())
    except (DecodeError, ValueError, JoseError):
        raise CertificateRefused(Outcome.unreadable, "not a compact JWS") from None
    if header.get("typ") != TYPE or header.get("alg") != ALGORITHM:
        raise CertificateRefused(Outcome.unreadable, f"not a license certificate (typ {header.get('typ')!r})")
    kids = {key.kid for key in keys.keys}
    if header.get("kid") not in kids:
        raise CertificateRefused(Outcome.unknown_key, f"no key {header.get('kid')!r} in the JWKS")
    try:
        token = jwt.decode(certificate.strip(), keys, algorithms=[ALGORITHM])
    except BadSignatureError:
        raise CertificateRefused(Outcome.bad_signature, "the signature does not match") from None
    except (DecodeError, ValueError, JoseError) as error:
        raise CertificateRefused(Outcome.bad_signature, f"the certificate does not verify: {error}") from None
    claims = dict(token.claims)
    if audience is not None and claims.get("aud") != audience:
        raise CertificateRefused(Outcome.wrong_audience, f"issued for {claims.get('aud')!r}, not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= (now if now is not None else time.time()):
        raise CertificateRefused(Outcome.expired, "the certificate has expired: refresh it")
    status = claims.get("license", {}).get("status") if isinstance(claims.get("license"), dict) else None
    if not check_status:
        return VerifiedCertificate(header=header, claims=claims)
    if status == "revoked":
        raise CertificateRefused(Outcome.revoked, "the license is revoked")
    if status == "expired":
        raise CertificateRefused(Outcome.license_expired, "the license has expired")
    if status != "active":
        raise CertificateRefused(Outcome.unreadable, f"unknown license status {status!r}")
    return VerifiedCertificate(header=header, claims=claims)
