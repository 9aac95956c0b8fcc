"""Random bytes and random JSON fed to the offline request endpoint: only clean 4xx problems, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import TEST_SECRET

OFFLINE = "/api/v1/activations/offline"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
# Near-misses of a real request: the right keys with random values, so validation is reached.
request_like = st.fixed_dictionaries(
    {"format": st.just("tessera-offline-request/1") | st.text(max_size=30)},
    optional={
        "code": json_values,
        "activation_id": json_values | st.uuids().map(str),
        "secret": json_values,
        "container": json_values
        | st.fixed_dictionaries(
            {"kind": st.sampled_from(["software", "dongle", "cloud", "x"])},
            optional={
                "fingerprint": json_values,
                "serial": json_values,
                "cloud_container_id": json_values,
                "credential": json_values,
            },
        ),
        "nonce": json_values | st.text(alphabet="abcXYZ019_-", min_size=20, max_size=140),
        "last_seq": json_values,
    },
)


@pytest.fixture
async def client(sqlite_url: str, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    settings_ = Settings(
        database_url=sqlite_url,
        var_dir=tmp_path / "var",
        config_dir=REPO_ROOT / "config",
        secret_key=TEST_SECRET.decode(),
        temporal_address="127.0.0.1:1",
        activation_failure_limit_client="100000/minute",
        activation_failure_limit_global="100000/minute",
    )
    app = create_app(settings_)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://tessera.test") as api,
    ):
        yield api


def _clean_4xx(status: int, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:300])
    problem = json.loads(body)
    assert isinstance(problem["code"], str)
    assert problem["status"] == status


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(
    content=st.binary(max_size=6000)
    | json_values.map(lambda value: json.dumps(value).encode())
    | request_like.map(lambda value: json.dumps(value).encode())
)
async def test_random_bytes_and_json_get_clean_4xx(client: AsyncClient, content: bytes) -> None:
    response = await client.post(OFFLINE, content=content, headers={"Content-Type": "application/json"})
    _clean_4xx(response.status_code, response.content)
