"""Offline activation: the device's request file through `tessera offline request`, the upload, the update file
applied with `tessera offline apply`; replays, reused nonces, older `seq`, malformed and oversized files."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from typer.testing import CliRunner

from tessera.cli import app
from tests.conftest import RightsWorld

OFFLINE = "/api/v1/activations/offline"
DEVICE = {"kind": "software", "fingerprint": "device-0001"}


def request_by_code(code: str, **changes: Any) -> dict[str, Any]:
    body = {
        "format": "tessera-offline-request/1",
        "code": code,
        "container": DEVICE,
        "nonce": secrets.token_urlsafe(24),
        "last_seq": 0,
    }
    return body | changes


async def upload(api: AsyncClient, content: bytes | dict[str, Any]) -> Any:
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    return await api.post(OFFLINE, content=data, headers={"Content-Type": "application/json"})


async def test_round_trip_with_the_device_commands(api: AsyncClient, rights_world: RightsWorld, tmp_path: Path) -> None:
    runner = CliRunner()
    state, request_file, update_file = tmp_path / "device.json", tmp_path / "request.json", tmp_path / "update.json"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text((await api.get("/.well-known/jwks.json")).text)
    made = runner.invoke(
        app,
        [
            "offline",
            "request",
            "--state",
            str(state),
            "--out",
            str(request_file),
            "--code",
            rights_world.codes["own"],
            "--fingerprint",
            "device-0001",
        ],
    )
    assert made.exit_code == 0, made.output
    assert oct(request_file.stat().st_mode & 0o777) == "0o600"
    answer = await upload(api, request_file.read_bytes())
    assert answer.status_code == 200, answer.text
    update_file.write_text(answer.text)
    applied = runner.invoke(
        app, ["offline", "apply", str(update_file), "--jwks", str(jwks_file), "--state", str(state)]
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["seq"] == 1
    # The identical request again: the identical answer, and nothing issued anew.
    again = await upload(api, request_file.read_bytes())
    assert again.json() == answer.json()
    # An update applied twice is refused: its nonce answers no pending request any more.
    twice = runner.invoke(app, ["offline", "apply", str(update_file), "--jwks", str(jwks_file), "--state", str(state)])
    assert twice.exit_code != 0
    # The next round refreshes by activation id and secret, from the state file.
    made = runner.invoke(app, ["offline", "request", "--state", str(state), "--out", str(request_file)])
    assert made.exit_code == 0, made.output
    assert "activation_id" in json.loads(request_file.read_text())
    refreshed = await upload(api, request_file.read_bytes())
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["secret"] is None
    update_file.write_text(refreshed.text)
    applied = runner.invoke(
        app, ["offline", "apply", str(update_file), "--jwks", str(jwks_file), "--state", str(state)]
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["seq"] == 2
    # An update for another device's request (another nonce) is refused by the device.
    runner.invoke(app, ["offline", "request", "--state", str(state), "--out", str(request_file)])
    refused = runner.invoke(
        app, ["offline", "apply", str(update_file), "--jwks", str(jwks_file), "--state", str(state)]
    )
    assert refused.exit_code == 2


async def test_nonce_reused_by_another_request_and_older_seq_are_refused(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    first = request_by_code(rights_world.codes["own"])
    answer = (await upload(api, first)).json()
    other = await upload(api, first | {"container": {"kind": "software", "fingerprint": "device-0002"}})
    assert other.status_code == 409
    assert other.json()["code"] == "offline-nonce-reused"
    refresh = {
        "format": "tessera-offline-request/1",
        "activation_id": answer["activation_id"],
        "secret": answer["secret"],
        "container": DEVICE,
        "nonce": secrets.token_urlsafe(24),
        "last_seq": 1,
    }
    assert (await upload(api, refresh)).status_code == 200  # issues seq 2
    replayed = await upload(api, refresh | {"nonce": secrets.token_urlsafe(24)})
    assert replayed.status_code == 409
    assert replayed.json()["code"] == "offline-replay"
    kept_nonce = secrets.token_urlsafe(24)
    unknown = await upload(api, refresh | {"nonce": kept_nonce, "last_seq": 7})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "offline-seq-unknown"
    # A refused request uses up nothing: its nonce still answers a corrected request.
    corrected = await upload(api, refresh | {"nonce": kept_nonce, "last_seq": 2})
    assert corrected.status_code == 200, corrected.text
    elsewhere = await upload(
        api,
        refresh | {"nonce": secrets.token_urlsafe(24), "last_seq": 3, "container": {"kind": "dongle", "serial": "x1"}},
    )
    assert elsewhere.json()["code"] == "container-mismatch"
    wrong_secret = await upload(api, refresh | {"nonce": secrets.token_urlsafe(24), "last_seq": 3, "secret": "tsa_no"})
    assert wrong_secret.status_code == 404
    # The code path with the ticket active in this container already: the device must hold the newest seq.
    by_code_again = await upload(api, request_by_code(rights_world.codes["own"]))
    assert by_code_again.json()["code"] == "offline-replay"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"not json", 422, "offline-request-malformed"),
        (b"\xff\xfe\x00", 422, "offline-request-malformed"),
        (b"[1, 2]", 422, "offline-request-malformed"),
        (b"[" * 3000 + b"]" * 3000, 413, "offline-request-too-large"),
        (b"[" * 2000, 422, "offline-request-malformed"),
        (json.dumps({"format": "tessera-offline-request/1"}).encode(), 422, "invalid-input"),
        (b" " * 5000, 413, "offline-request-too-large"),
    ],
)
async def test_malformed_and_oversized_files(api: AsyncClient, content: bytes, status: int, code: str) -> None:
    answer = await upload(api, content)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nonce": "short"}, "nonce"),
        ({"last_seq": -1}, "last_seq"),
        ({"extra": True}, "extra"),
        ({"format": "v2"}, "format"),
        ({"container": {"kind": "software"}}, "container.fingerprint"),
    ],
)
async def test_schema_problems_name_the_field(
    api: AsyncClient, rights_world: RightsWorld, changes: dict[str, Any], field: str
) -> None:
    answer = await upload(api, request_by_code(rights_world.codes["own"], **changes))
    assert answer.status_code == 422, answer.text
    assert field in [issue["field"] for issue in answer.json()["errors"]]
