"""Activation over HTTP: activate, verify with the published JWKS alone, tamper, refresh, return, problems."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from httpx import AsyncClient
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation import containers
from tests.activation.world import set_product
from tests.conftest import RightsWorld, bearer

ACTIVATIONS = "/api/v1/activations"
DEVICE = {"kind": "software", "fingerprint": "device-0001"}


async def published(api: AsyncClient) -> KeySet:
    answer = await api.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"].startswith("public, max-age=")
    return KeySet.import_key_set(answer.json())


def claims_of(certificate: str, keys: KeySet) -> dict[str, object]:
    return dict(jwt.decode(certificate, keys, algorithms=["EdDSA"]).claims)


def tampered(certificate: str, part: int) -> str:
    """The certificate with one byte of its payload (part 1) or signature (part 2) changed."""
    parts = certificate.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
    raw[len(raw) // 2] ^= 0x01
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


async def test_activate_verify_tamper_refresh_return(api: AsyncClient, rights_world: RightsWorld) -> None:
    answer = await api.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": DEVICE})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == {"activation_id", "secret", "license_id", "certificate"}
    assert answer.headers["cache-control"] == "no-store"
    keys = await published(api)
    header = json.loads(base64.urlsafe_b64decode(created["certificate"].split(".")[0] + "=="))
    assert header["typ"] == "license+jwt"
    assert header["alg"] == "EdDSA"
    claims = claims_of(created["certificate"], keys)
    assert claims["aud"] == "software:device-0001"
    for part in (1, 2):
        with pytest.raises((BadSignatureError, ValueError)):
            claims_of(tampered(created["certificate"], part), keys)

    refreshed = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["certificate"], keys)["license"]["seq"] == 2  # type: ignore[index]

    wrong = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": "tsa_wrong"})
    assert wrong.status_code == 404
    assert wrong.json()["code"] == "activation-not-found"

    returned = await api.request(
        "DELETE", f"{ACTIVATIONS}/{created['activation_id']}", json={"secret": created["secret"]}
    )
    assert returned.status_code == 200, returned.text
    assert returned.json()["moves_left"] == 2
    again = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    assert again.status_code == 409
    assert again.json()["code"] == "activation-returned"
    elsewhere = {"kind": "software", "fingerprint": "device-0002"}
    moved = await api.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": elsewhere})
    assert moved.status_code == 201, moved.text


async def test_same_container_again_answers_200_and_one_slot(api: AsyncClient, rights_world: RightsWorld) -> None:
    body = {"code": rights_world.codes["own"], "container": DEVICE}
    first = await api.post(ACTIVATIONS, json=body)
    second = await api.post(ACTIVATIONS, json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["activation_id"] == second.json()["activation_id"]
    old = await api.post(
        f"{ACTIVATIONS}/{first.json()['activation_id']}/refresh", json={"secret": first.json()["secret"]}
    )
    assert old.status_code == 404  # the secret was replaced


async def test_unknown_and_foreign_tickets_look_the_same(api: AsyncClient, rights_world: RightsWorld) -> None:
    unknown = await api.post(ACTIVATIONS, json={"code": "0000-0000-0000-0000-0000-0000-0000", "container": DEVICE})
    # A customer admin's key narrows the tickets to its reach: another customer's ticket is not there.
    foreign = await api.post(
        ACTIVATIONS,
        json={"code": rights_world.codes["foreign"], "container": DEVICE},
        headers=bearer(rights_world.keys["customer_admin"]),
    )
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json()["code"] == foreign.json()["code"] == "ticket-not-found"
    assert unknown.json()["detail"] == foreign.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "x", "container": DEVICE}, "code"),
        ({"code": "0000-0000-0000-0000-0000-0000-0000", "container": {"kind": "floppy"}}, "container"),
        ({"code": "0000-0000-0000-0000-0000-0000-0000", "container": {"kind": "software"}}, "container.fingerprint"),
        ({"code": "0000-0000-0000-0000-0000-0000-0000", "container": DEVICE, "extra": 1}, "extra"),
    ],
)
async def test_bad_bodies_name_the_field(api: AsyncClient, body: dict[str, object], field: str) -> None:
    answer = await api.post(ACTIVATIONS, json=body)
    assert answer.status_code == 422, answer.text
    assert field in [issue["field"] for issue in answer.json()["errors"]], answer.json()


async def test_wrong_kind_and_cloud_until_served(
    api: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on a deployment that serves no cloud containers: no binder for the kind.
    monkeypatch.setattr(containers, "_BINDERS", {k: v for k, v in containers._BINDERS.items() if k != "cloud"})
    dongle = await api.post(
        ACTIVATIONS, json={"code": rights_world.codes["own"], "container": {"kind": "dongle", "serial": "3-1234567"}}
    )
    assert dongle.status_code == 422
    assert dongle.json()["code"] == "container-kind-not-allowed"
    assert dongle.json()["errors"][0]["field"] == "container.kind"
    await set_product(sessions, rights_world.product_id, container_kinds=["software", "cloud"])
    cloud = {"kind": "cloud", "cloud_container_id": str(uuid.uuid4()), "credential": "c" * 40}
    answer = await api.post(ACTIVATIONS, json={"code": rights_world.codes["own"], "container": cloud})
    assert answer.status_code == 422
    assert answer.json()["code"] == "container-kind-unavailable"
    assert answer.json()["errors"][0]["field"] == "container.kind"


async def test_return_by_an_administrator_and_the_moves_limit_at_the_edge(
    api: AsyncClient, rights_world: RightsWorld
) -> None:
    code = rights_world.codes["own"]
    for n in range(3):
        created = (
            await api.post(ACTIVATIONS, json={"code": code, "container": {**DEVICE, "fingerprint": f"dev-{n:05d}"}})
        ).json()
        path = f"{ACTIVATIONS}/{created['activation_id']}"
        # Administrators elsewhere, and a member without the allocate permission, do not reach it.
        for outsider, status in (("sibling_admin", 404), ("foreign_admin", 404), ("customer_member", 403)):
            refused = await api.request("DELETE", path, headers=bearer(rights_world.keys[outsider]))
            assert refused.status_code == status, (outsider, refused.text)
        answer = await api.request("DELETE", path, headers=bearer(rights_world.keys["customer_admin"]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["moves_left"] == 2 - n
    created = (await api.post(ACTIVATIONS, json={"code": code, "container": DEVICE})).json()
    fourth = await api.request(
        "DELETE", f"{ACTIVATIONS}/{created['activation_id']}", json={"secret": created["secret"]}
    )
    assert fourth.status_code == 429
    assert fourth.json()["code"] == "moves-exhausted"
    assert 29 * 86400 < int(fourth.headers["retry-after"]) <= 30 * 86400
    # Still active where it is: a refused move leaves the license in place.
    refreshed = await api.post(f"{ACTIVATIONS}/{created['activation_id']}/refresh", json={"secret": created["secret"]})
    assert refreshed.status_code == 200
    without = await api.request("DELETE", f"{ACTIVATIONS}/{created['activation_id']}")
    assert without.status_code == 404
