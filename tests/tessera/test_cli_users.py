"""`tessera users invite`: the command line invites like an administrator and prints the link."""

from __future__ import annotations

import asyncio
import os
import sys

from httpx import AsyncClient

from tessera.settings import REPO_ROOT, Settings
from tests.api.people import LINK, PASSWORD, sign_in
from tests.conftest import bearer


async def _tessera(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": settings.resolved_database_url,
        "TESSERA_SECRET_KEY": "test-secret-key-not-for-production",
        "TESSERA_CONFIG_DIR": str(REPO_ROOT / "config"),
        "TESSERA_PORTAL_URL": "https://portal.example.com/",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tessera", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_printed_link_lets_the_invitee_in(
    api: AsyncClient, settings: Settings, vendor_admin_key: str
) -> None:
    vendor = (await api.get("/api/v1/organizations", headers=bearer(vendor_admin_key))).json()["items"][0]
    code, out, err = await _tessera(
        settings, "users", "invite", "Ops@Example.com", "--organization", vendor["id"], "--role", "admin"
    )
    assert code == 0, err
    assert "https://portal.example.com/invitations/" in out
    match = LINK.search(out)
    assert match is not None
    redeemed = await api.post(
        "/api/v1/invitations/redeem", json={"token": match.group(1), "email": "ops@example.com", "password": PASSWORD}
    )
    assert redeemed.status_code == 200, redeemed.text
    me = (await api.get("/api/v1/users/me", headers=bearer(await sign_in(api, "ops@example.com")))).json()
    assert me["vendor_admin"] is True


async def test_bad_arguments_are_named(settings: Settings, vendor_admin_key: str) -> None:
    assert vendor_admin_key
    code, _out, err = await _tessera(settings, "users", "invite", "ops@example.com", "--organization", "nope")
    assert code == 1
    assert "--organization" in err
    code, _out, err = await _tessera(settings, "users", "invite", "not-an-address")
    assert code == 1
    assert "not an e-mail address" in err
