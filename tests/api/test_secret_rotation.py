"""Rotating TESSERA_SECRET_KEY: keys and ticket codes made under the old secret keep working."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import uuid

from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.apikeys import keyed_hash
from tessera.auth.keyring import KeyRing, secret_version
from tessera.licenses import codes
from tessera.models import ApiKey
from tessera.settings import REPO_ROOT, Settings
from tests.api.people import client_for
from tests.conftest import TEST_SECRET, RightsWorld, bearer

NEW_SECRET = b"the-rotated-secret-of-this-deployment"
Sessions = async_sessionmaker[AsyncSession]


def rotated(settings: Settings, *, keep_old: bool) -> Settings:
    return settings.model_copy(
        update={
            "secret_key": SecretStr(NEW_SECRET.decode()),
            "previous_secret_keys": SecretStr(f"{TEST_SECRET.decode()}, unused-older-secret") if keep_old else None,
        }
    )


async def test_old_keys_and_ticket_codes_work_after_a_rotation(
    settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with client_for(rotated(settings, keep_old=True)) as api:
        old_key = bearer(w.keys["customer_admin"])
        me = await api.get("/api/v1/users/me", headers=old_key)
        assert me.status_code == 200
        found = await api.post("/api/v1/tickets/lookup", json={"code": w.codes["own"]}, headers=old_key)
        assert found.status_code == 200, found.text
        assert found.json()["id"] == str(w.tickets["own"])
        shown = await api.post(f"/api/v1/tickets/{w.tickets['own']}/code", headers=old_key)
        assert shown.json()["code"] == w.codes["own"]
        created = await api.post("/api/v1/api-keys", json={"name": "after rotation"}, headers=old_key)
        assert created.status_code == 201
        assert (await api.get("/api/v1/users/me", headers=bearer(created.json()["secret"]))).status_code == 200
    async with sessions() as session:
        new = await session.get(ApiKey, uuid.UUID(created.json()["id"]))
        used = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(me.json()["api_key_id"])))
        untouched = await session.scalar(
            select(ApiKey).where(ApiKey.secret_hash == keyed_hash(TEST_SECRET, w.keys["customer_member"]))
        )
    assert new is not None
    assert new.secret_version == secret_version(NEW_SECRET)
    assert new.secret_hash == keyed_hash(NEW_SECRET, created.json()["secret"])
    # A key used after the rotation is re-hashed under the newest secret; one not used yet still names the old.
    assert used is not None
    assert used.secret_version == secret_version(NEW_SECRET)
    assert used.secret_hash == keyed_hash(NEW_SECRET, w.keys["customer_admin"])
    assert untouched is not None
    assert untouched.secret_version == secret_version(TEST_SECRET)
    # Once re-hashed, the key no longer needs the old secret at all.
    async with client_for(rotated(settings, keep_old=False)) as api:
        assert (await api.get("/api/v1/users/me", headers=bearer(w.keys["customer_admin"]))).status_code == 200


async def test_without_the_previous_secret_old_keys_fail(settings: Settings, rights_world: RightsWorld) -> None:
    async with client_for(rotated(settings, keep_old=False)) as api:
        old_key = bearer(rights_world.keys["customer_admin"])
        assert (await api.get("/api/v1/users/me", headers=old_key)).status_code == 401
        vendor = bearer(rights_world.keys["vendor_admin"])
        assert (await api.get("/api/v1/users/me", headers=vendor)).status_code == 401


def test_a_ring_is_the_newest_secret_wherever_bytes_are_expected() -> None:
    ring = KeyRing(NEW_SECRET, [TEST_SECRET, NEW_SECRET, b""])
    assert ring == NEW_SECRET
    assert ring.secrets == (NEW_SECRET, TEST_SECRET)
    assert ring.by_version(secret_version(TEST_SECRET)) == TEST_SECRET
    assert NEW_SECRET.decode() not in repr(ring)
    assert NEW_SECRET.decode() not in f"{ring}"
    code = codes.generate_code()
    # Made under the old secret, found and opened through the ring; new copies use the newest secret.
    ticket_id = uuid.uuid4()
    old_blob = codes.encrypt_code(TEST_SECRET, ticket_id, code)
    assert codes.decrypt_code(ring, ticket_id, old_blob) == code
    assert codes.code_hash(TEST_SECRET, code) in codes.code_hashes(ring, code)
    assert codes.code_hash(ring, code) == codes.code_hash(NEW_SECRET, code)
    new_blob = codes.encrypt_code(ring, ticket_id, code)
    assert codes.decrypt_code(NEW_SECRET, ticket_id, new_blob) == code


def _readme_rotation_commands() -> tuple[list[str], str]:
    """The README's commands for counting the keys that still depend on an old secret: a shell line and SQL."""
    section = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("### Secret rotation", 1)[1]
    section = section.split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines()]
    shell = next(line for line in lines if line.startswith(".venv/bin/python -c"))
    start = next(n for n, line in enumerate(lines) if line.startswith("SELECT count(*) FROM api_key"))
    end = next(n for n in range(start, len(lines)) if lines[n].endswith(";"))
    return shlex.split(shell), " ".join(lines[start : end + 1]).rstrip(";")


async def test_the_readme_counts_every_key_still_on_an_old_secret(
    settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    command, sql = _readme_rotation_commands()
    environment = {**os.environ, "TESSERA_SECRET_KEY": NEW_SECRET.decode(), "TESSERA_VAR_DIR": str(settings.var_dir)}
    printed = await asyncio.to_thread(
        subprocess.run, command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=True
    )
    version = printed.stdout.strip()
    assert version == secret_version(NEW_SECRET)
    async with client_for(rotated(settings, keep_old=True)) as api:  # one key moves to the new secret
        assert (
            await api.get("/api/v1/users/me", headers=bearer(rights_world.keys["customer_admin"]))
        ).status_code == 200
    async with sessions() as session:
        # One key from before versions were recorded, as the upgrade leaves them.
        first = await session.scalar(
            select(ApiKey)
            .where(ApiKey.revoked_at.is_(None), ApiKey.secret_version.is_not(None))
            .order_by(ApiKey.created_at)  # the oldest, never the one just moved: rows come in no fixed order
        )
        assert first is not None
        first.secret_version = None
        await session.commit()
        live = await session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
        on_new = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.revoked_at.is_(None), ApiKey.secret_version == version)
        )
        counted = await session.scalar(text(sql.replace("<new version>", version)))
    assert on_new == 1
    assert counted == (live or 0) - 1  # every live key but the one re-hashed, including the one without a version
