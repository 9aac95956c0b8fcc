"""Verify a Tessera license certificate inside your product, offline, with `joserfc` and a pinned JWKS.

Copy this file into your software and ship the deployment's JWKS with it (download it once from
https://<your tessera>/.well-known/jwks.json; ship it again after a key rotation). Usage:

    python verify_license.py CERTIFICATE_FILE JWKS_FILE FINGERPRINT

Prints the license (product, modules, fields, status, expires_at) and exits 0, or exits with:
3 bad signature, 4 unknown key, 5 issued for another device, 6 certificate expired (refresh it),
7 license revoked, 8 license expired.
"""

import json
import sys
import time
import warnings

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

warnings.filterwarnings("ignore", message="EdDSA is deprecated")  # RFC 9864 renames the same algorithm


def check(certificate: str, jwks: dict, fingerprint: str) -> dict:
    """The certificate's `license` claim, or SystemExit with the code above."""
    keys = KeySet.import_key_set(jwks)
    header = extract_compact(certificate.encode()).headers()
    if header.get("typ") != "license+jwt" or header.get("alg") != "EdDSA":
        sys.exit(3)
    if header.get("kid") not in {key.kid for key in keys.keys}:
        sys.exit(4)
    try:
        claims = jwt.decode(certificate, keys, algorithms=["EdDSA"]).claims
    except JoseError:
        sys.exit(3)
    if claims.get("aud") != f"software:{fingerprint}":
        sys.exit(5)
    if claims.get("exp", 0) <= time.time():
        sys.exit(6)
    license = claims["license"]
    if license["status"] == "revoked":
        sys.exit(7)
    if license["status"] != "active":
        sys.exit(8)
    return license


if __name__ == "__main__":
    certificate_file, jwks_file, device = sys.argv[1:4]
    with open(certificate_file) as cert, open(jwks_file) as keys:
        found = check(cert.read().strip(), json.load(keys), device)
    print(json.dumps(found, indent=2, sort_keys=True))  # noqa: T201
