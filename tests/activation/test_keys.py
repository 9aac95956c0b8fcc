"""Signing keys at rest and from the shell: encrypted under the deployment secret, rotated, listed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tessera.activation.keys import SigningKeys, decrypt_private_key, published_keys, rotate_signing_key
from tessera.activation.models import SigningKey
from tessera.auth.keyring import KeyRing
from tessera.cli import app
from tessera.settings import get_settings
from tests.conftest import TEST_SECRET


@pytest.fixture
def cli_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TESSERA_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TESSERA_SECRET_KEY", TEST_SECRET.decode())
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


async def test_private_key_is_stored_encrypted_and_opens_after_a_secret_rotation(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    signer = await SigningKeys(sessions, TEST_SECRET).current()
    async with sessions() as session:
        row = await session.scalar(select(SigningKey))
    assert row is not None
    raw = signer.private.private_key.private_bytes_raw()  # type: ignore[union-attr]
    assert raw not in row.private_key_encrypted
    assert repr(signer) == f"Signer(kid={row.kid!r})"  # never the key itself, not even in a traceback
    rotated = KeyRing(b"a brand new deployment secret", [TEST_SECRET])
    opened = decrypt_private_key(rotated, row.kid, row.private_key_encrypted)
    assert Ed25519PrivateKey.from_private_bytes(opened).public_key().public_bytes_raw() == row.public_key
    with pytest.raises(Exception, match="no secret"):
        decrypt_private_key(b"another deployment", row.kid, row.private_key_encrypted)


@pytest.mark.usefixtures("cli_database")
def test_keys_rotate_and_list() -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["keys", "list"])
    assert empty.exit_code == 0, empty.output
    assert "no signing key yet" in empty.stdout
    first = runner.invoke(app, ["keys", "rotate"])
    second = runner.invoke(app, ["keys", "rotate"])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    listed = runner.invoke(app, ["keys", "list"])
    lines = listed.stdout.strip().splitlines()[1:]
    assert len(lines) == 2
    assert "signs now" in lines[0]
    # The retired key never signed anything, so no certificate needs it: it is not published.
    assert lines[1].endswith("not published")


async def test_jwks_lists_retired_keys_only_while_needed(sessions: async_sessionmaker[AsyncSession]) -> None:
    keys = SigningKeys(sessions, TEST_SECRET)
    await keys.signer(datetime.now(UTC) + timedelta(days=30))  # it signs: its signed_until reaches 31 days
    async with sessions() as session:
        await rotate_signing_key(session, TEST_SECRET)
        await session.commit()
    async with sessions() as session:
        now = [key.generation for key in await published_keys(session)]
        later = [key.generation for key in await published_keys(session, datetime.now(UTC) + timedelta(days=32))]
    assert now == [2, 1]
    assert later == [2]
