"""The pure-ASGI refresh in front of the router answers exactly as the FastAPI route does: the same application
built twice on one database, once without the fast path, each request sent to both and the answers compared byte
for byte (status, headers, body); the fast path answers well-formed refreshes itself and passes the rest on."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import fast_refresh
from api.app import create_app
from tessera.activation.models import Activation, ActivationStatus
from tessera.settings import Settings
from tests.conftest import RightsWorld

ACTIVATIONS = "/api/v1/activations"
BODY_LIMIT = 6000
JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Apps:
    fast: FastAPI
    routed: FastAPI
    fast_answers: list[str]
    """Activation ids the fast path answered itself."""


@asynccontextmanager
async def built(settings: Settings, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> AsyncIterator[Apps]:
    """The application with `changes` to its settings, twice: with the fast path, and without it."""
    changed = settings.model_copy(update=changes)
    fast, routed = create_app(changed), create_app(changed)
    # The stack is built at the first request: the routed app is the same application without the fast path.
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not fast_refresh.RefreshFastPath]  # type: ignore[comparison-overlap]
    answered: list[str] = []
    original = fast_refresh.refresh_answer

    async def recording(runtime: Any, activation_id: uuid.UUID, secret: str, client: str) -> bytes:
        answered.append(str(activation_id))
        return await original(runtime, activation_id, secret, client)

    monkeypatch.setattr(fast_refresh, "refresh_answer", recording)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(fast.router.lifespan_context(fast))
        await stack.enter_async_context(routed.router.lifespan_context(routed))
        yield Apps(fast, routed, answered)


@pytest.fixture
async def apps(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Apps]:
    changes = {"max_body_bytes": BODY_LIMIT, "activation_failure_limit_client": "4/minute"}
    async with built(settings, monkeypatch, **changes) as both:
        yield both


async def send(
    app: FastAPI,
    path: str,
    chunks: Sequence[bytes] = (),
    headers: Sequence[tuple[bytes, bytes]] = JSON,
    *,
    method: str = "POST",
    query: bytes = b"",
) -> Answer:
    """One request straight into the ASGI app, its body in `chunks` (streamed when more than one)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"tessera.test"), *headers],
        "client": ("192.0.2.7", 40000),
        "server": ("tessera.test", 80),
    }
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1} for n, chunk in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def record(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, record)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], list(start["headers"]), body)


async def activated(api: FastAPI, world: RightsWorld, fingerprint: str) -> tuple[str, str]:
    async with AsyncClient(transport=ASGITransport(app=api), base_url="http://tessera.test") as client:
        answer = await client.post(
            ACTIVATIONS,
            json={"code": world.codes["own"], "container": {"kind": "software", "fingerprint": fingerprint}},
        )
    assert answer.status_code == 201, answer.text
    return answer.json()["activation_id"], answer.json()["secret"]


def body(value: object) -> list[bytes]:
    return [json.dumps(value).encode()]


async def test_bad_requests_get_the_routes_answers_byte_for_byte(apps: Apps, rights_world: RightsWorld) -> None:
    activation_id, secret = await activated(apps.fast, rights_world, "fast-device-01")
    path = f"{ACTIVATIONS}/{activation_id}/refresh"
    upper = str(uuid.uuid4()).upper()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("not JSON", {"chunks": [b'{"secret": '], "path": path}),
        ("an array", {"chunks": body([secret]), "path": path}),
        ("no secret", {"chunks": body({}), "path": path}),
        ("an unknown field", {"chunks": body({"secret": secret, "device": "x"}), "path": path}),
        ("an empty secret", {"chunks": body({"secret": ""}), "path": path}),
        ("a secret too long", {"chunks": body({"secret": "s" * 201}), "path": path}),
        ("a control character", {"chunks": body({"secret": secret + "\u0007"}), "path": path}),
        ("a bidi override", {"chunks": body({"secret": "\u202e" + secret}), "path": path}),
        ("a number", {"chunks": body({"secret": 12345}), "path": path}),
        ("null", {"chunks": body({"secret": None}), "path": path}),
        ("no body", {"chunks": [], "path": path}),
        ("no content type", {"chunks": body({"secret": secret}), "headers": []}),
        ("upper-case JSON, an empty body", {"chunks": [], "headers": [(b"content-type", b"APPLICATION/JSON")]}),
        ("a form", {"chunks": [b"secret=x"], "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}),
        ("plain text", {"chunks": body({"secret": secret}), "headers": [(b"content-type", b"text/plain")]}),
        ("a query parameter", {"chunks": body({"secret": secret}), "query": b"secret=x"}),
        ("a malformed id", {"chunks": body({"secret": secret}), "path": f"{ACTIVATIONS}/not-an-id/refresh"}),
        ("GET", {"chunks": [], "method": "GET"}),
        ("PUT", {"chunks": body({"secret": secret}), "method": "PUT"}),
        ("a trailing slash", {"chunks": body({"secret": secret}), "path": path + "/"}),
        ("too large, declared", {"chunks": [b" " * 7000], "headers": [*JSON, (b"content-length", b"7000")]}),
        ("a length not a number", {"chunks": body({"secret": secret}), "headers": [*JSON, (b"content-length", b"x")]}),
        ("too large, streamed", {"chunks": [b" " * 3500, b" " * 3500]}),
        ("large, then not JSON", {"chunks": [b" " * 4500, b"{"]}),
        ("a wrong secret", {"chunks": body({"secret": "tsa_wrong"}), "path": path}),
        ("an unknown id", {"chunks": body({"secret": secret}), "path": f"{ACTIVATIONS}/{uuid.uuid4()}/refresh"}),
        ("an upper-case unknown id", {"chunks": body({"secret": "x"}), "path": f"{ACTIVATIONS}/{upper}/refresh"}),
    ]
    for name, case in cases:
        request = {"path": path, **case}
        fast, routed = await send(apps.fast, **request), await send(apps.routed, **request)
        assert fast == routed, name
        assert fast.status >= 300, name
        assert (b"cache-control", b"no-store") in fast.headers, name
    # Only the well-formed ones were the fast path's (a wrong secret, an unknown id): the rest went to the route.
    assert len(apps.fast_answers) == 3


async def test_the_failure_limit_answers_alike(apps: Apps, rights_world: RightsWorld) -> None:
    activation_id, _secret = await activated(apps.fast, rights_world, "fast-device-02")
    wrong: dict[str, Any] = {"path": f"{ACTIVATIONS}/{activation_id}/refresh", "chunks": body({"secret": "tsa_wrong"})}
    fast = [await send(apps.fast, **wrong) for _ in range(6)]
    routed = [await send(apps.routed, **wrong) for _ in range(6)]
    assert [a.status for a in fast] == [404] * 4 + [429] * 2
    assert fast == routed


async def test_good_refreshes_are_answered_alike(
    apps: Apps, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    activation_id, secret = await activated(apps.fast, rights_world, "fast-device-03")
    path = f"{ACTIVATIONS}/{activation_id}/refresh"
    good = body({"secret": secret})
    variants: list[dict[str, Any]] = [
        {"chunks": good},
        {"chunks": [good[0][:7], good[0][7:]]},  # streamed in two parts
        {"chunks": good, "headers": [(b"content-type", b"application/json; charset=utf-8")]},
        {"chunks": [b'  {"secret" : "' + secret.encode() + b'"}\n']},
        {"chunks": [b" " * 4500, good[0]]},  # beyond what the fast path reads: the route's
        {"chunks": [b" " * 4500 + good[0]]},  # the same in one part
        {"chunks": good, "headers": [*JSON, (b"authorization", b"Bearer tsk_not-a-key-of-anyone-at-all")]},
        {"chunks": good, "headers": [*JSON, (b"origin", b"https://app.example")]},  # for CORS: the stack's
    ]
    seqs = []
    for variant in variants:
        answers = [await send(apps.fast, path, **variant), await send(apps.routed, path, **variant)]
        for answer in answers:
            assert answer.status == 200, answer.body
            assert [h for h in answer.headers if h[0] != b"content-length"] == [
                h for h in answers[0].headers if h[0] != b"content-length"
            ]
            certificate = json.loads(answer.body)["certificate"]
            assert answer.body == b'{"certificate":"' + certificate.encode() + b'"}'
            seqs.append(claim_seq(certificate))
    assert seqs == list(range(2, 2 + 2 * len(variants)))
    # The fast path took all but the one with a charset parameter, the long ones and the one with an origin.
    assert len(apps.fast_answers) == len(variants) - 4
    async with sessions() as session:
        await session.execute(
            update(Activation).where(Activation.id == uuid.UUID(activation_id)).values(status=ActivationStatus.returned)
        )
        await session.commit()
    fast, routed = await send(apps.fast, path, good), await send(apps.routed, path, good)
    assert fast == routed
    assert fast.status == 409
    assert json.loads(fast.body)["code"] == "activation-returned"


async def test_cors_and_a_small_body_limit_answer_alike(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, rights_world: RightsWorld
) -> None:
    """The fast path stands outside CORS and the gate: a request CORS answers for, or a body beyond a limit below
    what the fast path reads, goes to the stack."""
    origin = (b"origin", b"https://app.example")
    async with built(settings, monkeypatch, cors_origins=["https://app.example"], max_body_bytes=1024) as apps:
        activation_id, secret = await activated(apps.fast, rights_world, "fast-device-04")
        path = f"{ACTIVATIONS}/{activation_id}/refresh"
        good = body({"secret": secret})
        refused: list[dict[str, Any]] = [
            {"chunks": [b" " * 1500 + good[0]]},
            {"chunks": [b" " * 1000, b" " * 500 + good[0]]},
            {
                "chunks": [b" " * 1500 + good[0]],
                "headers": [*JSON, (b"content-length", str(1500 + len(good[0])).encode())],
            },
            {"chunks": body({"secret": "tsa_wrong"}), "headers": [*JSON, origin]},
        ]
        for case in refused:
            fast, routed = await send(apps.fast, path, **case), await send(apps.routed, path, **case)
            assert fast == routed
            assert fast.status in (404, 413), fast.body
        for headers in ([*JSON, origin], JSON):
            fast, routed = await send(apps.fast, path, good, headers), await send(apps.routed, path, good, headers)
            assert fast.status == routed.status == 200, fast.body
            assert [h for h in fast.headers if h[0] != b"content-length"] == [
                h for h in routed.headers if h[0] != b"content-length"
            ]
            assert ((b"access-control-allow-origin", b"https://app.example") in fast.headers) is (origin in headers)
        # Only the refresh without an origin was the fast path's.
        assert apps.fast_answers == [activation_id]


def claim_seq(certificate: str) -> int:
    payload = certificate.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims["license"]["seq"])


async def test_the_operation_stays_in_the_openapi_document(apps: Apps) -> None:
    document = apps.fast.openapi()
    operation = document["paths"][f"{ACTIVATIONS}/{{activation_id}}/refresh"]["post"]
    assert set(operation["responses"]) >= {"200", "404", "409", "422", "429"}
