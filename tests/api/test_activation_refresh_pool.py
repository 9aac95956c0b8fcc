"""Refresh's own pool does not ping its connections before use: a connection that died while idle (a restarted
or failed-over server, an idle timeout) costs the refresh one more try on a fresh connection, not an error."""

from __future__ import annotations

import psycopg
import pytest
from httpx import AsyncClient

from tests.conftest import RightsWorld

ACTIVATIONS = "/api/v1/activations"


async def test_a_refresh_survives_its_connections_dying(
    api: AsyncClient, rights_world: RightsWorld, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("an SQLite connection does not die while idle")
    created = await api.post(
        ACTIVATIONS,
        json={"code": rights_world.codes["own"], "container": {"kind": "software", "fingerprint": "pool-device-01"}},
    )
    assert created.status_code == 201, created.text
    path = f"{ACTIVATIONS}/{created.json()['activation_id']}/refresh"
    secret = {"secret": created.json()["secret"]}
    assert (await api.post(path, json=secret)).status_code == 200  # the refresh pool holds a connection now
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert ended is not None
    assert ended[0] >= 1
    for _ in range(3):
        answer = await api.post(path, json=secret)
        assert answer.status_code == 200, answer.text
