"""Verifying certificates as vendors' software does: `tessera verify` and examples/verify_license.py (run as a
separate process with only the JWKS file), each failure with its own exit code."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from typer.testing import CliRunner

from tessera.activation.certificates import LicenseFacts, license_claims, sign_certificate
from tessera.activation.keys import SigningKeys, jwks_document, published_keys, rotate_signing_key
from tessera.cli import app
from tessera.db import create_engine, create_session_factory
from tessera.settings import REPO_ROOT
from tests.conftest import TEST_SECRET

EXAMPLE = REPO_ROOT / "examples" / "verify_license.py"
FINGERPRINT = "device-0001"


def facts(status: str = "active") -> LicenseFacts:
    return LicenseFacts(
        license_id=uuid.uuid4(),
        product_code="PRO-CAD",
        modules=["render"],
        fields={"seats": 2},
        license_status=status,
        ticket_status="activated",
        expires_at=None,
    )


class Certificates:
    """Certificates signed by a real signing key in a SQLite database, and the JWKS that verifies them."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path

    async def sign(self, *, status: str = "active", age: timedelta = timedelta(0), rotate: bool = False) -> str:
        engine = create_engine(self.url)
        sessions: async_sessionmaker = create_session_factory(engine)  # type: ignore[type-arg]
        try:
            if rotate:
                async with sessions() as session:
                    await rotate_signing_key(session, TEST_SECRET)
                    await session.commit()
            now = datetime.now(UTC) - age
            exp = now + timedelta(days=30)
            signer = await SigningKeys(sessions, TEST_SECRET).signer(exp)
            claims = license_claims(
                facts(status),
                issuer="https://licenses.example.com",
                audience=f"software:{FINGERPRINT}",
                activation_id=uuid.uuid4(),
                seq=1,
                now=now,
                exp=exp,
            )
            return sign_certificate(signer, claims)
        finally:
            await engine.dispose()

    async def jwks_file(self, name: str = "jwks.json") -> Path:
        engine = create_engine(self.url)
        try:
            async with create_session_factory(engine)() as session:
                document = jwks_document(await published_keys(session))
        finally:
            await engine.dispose()
        path = self.tmp_path / name
        path.write_text(json.dumps(document))
        return path


@pytest.fixture
def certificates(sqlite_url: str, tmp_path: Path) -> Certificates:
    return Certificates(sqlite_url, tmp_path)


def tamper_signature(certificate: str) -> str:
    head, payload, signature = certificate.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def run_example(tmp_path: Path, certificate: str, jwks: Path, fingerprint: str = FINGERPRINT) -> tuple[int, str]:
    cert_file = tmp_path / "certificate.jwt"
    cert_file.write_text(certificate)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(cert_file), str(jwks), fingerprint],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


async def test_example_script_accepts_a_valid_certificate_and_refuses_each_fault(
    certificates: Certificates, tmp_path: Path
) -> None:
    valid = await certificates.sign()
    jwks = await certificates.jwks_file()
    code, out = run_example(tmp_path, valid, jwks)
    assert code == 0
    assert json.loads(out)["product"] == "PRO-CAD"
    assert run_example(tmp_path, tamper_signature(valid), jwks)[0] == 3
    assert run_example(tmp_path, valid, jwks, fingerprint="another-device")[0] == 5
    assert run_example(tmp_path, await certificates.sign(age=timedelta(days=31)), jwks)[0] == 6
    assert run_example(tmp_path, await certificates.sign(status="revoked"), jwks)[0] == 7
    assert run_example(tmp_path, await certificates.sign(status="expired"), jwks)[0] == 8
    rotated = await certificates.sign(rotate=True)  # signed by a key the pinned file does not have
    assert run_example(tmp_path, rotated, jwks)[0] == 4
    assert run_example(tmp_path, rotated, await certificates.jwks_file("jwks-new.json"))[0] == 0


async def test_tessera_verify_exit_codes(certificates: Certificates, tmp_path: Path) -> None:
    valid = await certificates.sign()
    jwks = str(await certificates.jwks_file())
    runner = CliRunner()

    def verify(certificate: str, *options: str) -> int:
        result = runner.invoke(app, ["verify", certificate, "--jwks", jwks, *options])
        return result.exit_code

    ok = runner.invoke(app, ["verify", valid, "--jwks", jwks, "--fingerprint", FINGERPRINT])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["license"]["modules"] == ["render"]
    assert verify("not a certificate") == 2
    assert verify(tamper_signature(valid)) == 3
    assert verify(valid, "--audience", "software:another-device") == 5
    assert verify(valid, "--fingerprint", "another-device") == 5
    assert verify(await certificates.sign(age=timedelta(days=31))) == 6
    assert verify(await certificates.sign(status="revoked")) == 7
    assert verify(await certificates.sign(rotate=True)) == 4
    cert_file = tmp_path / "cert.jwt"
    cert_file.write_text(valid)
    assert verify(str(cert_file)) == 0
