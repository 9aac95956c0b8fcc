"""A pure-ASGI answer to `POST /api/v1/activations/{id}/refresh`, in front of the whole middleware stack.

Refresh is what devices call all day; through FastAPI it paid for route matching, dependency solving and the
request body machinery on every call, and every middleware's wrapping of `receive` and `send`. This middleware,
the outermost, answers a well-formed refresh itself, with the route's own service calls
(`api.routes.activations.refresh_answer`), the application's own exception handlers for its problems, and the
security headers exactly as `SecurityHeaders` writes them (its own function). Whatever it cannot answer exactly as
the full stack would, it passes on untouched, handing along any body it has read: another method, a query string,
a root path, an id not in canonical form, another content type or none, an `Origin` (CORS may answer for it), a
Content-Length the request gate refuses, a body that is not `{"secret": <clean text of 1-200 characters>}` or
larger than the gate allows. The gate, the route and its 422s therefore answer every irregular request byte for
byte as before. The route stays registered, so the operation stays in the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import SecurityHeaders, declared_length_problem, keyed_routes, with_security_headers
from api.routes.activations import refresh_answer as refresh_answer
from api.schemas.activations import SECRET_MAX_LENGTH
from tessera.schema_base import unclean_character

_PATH = re.compile(
    r"/api/v1/activations/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/refresh"
)
MAX_FAST_BODY_BYTES = 4096
"""Larger bodies (a valid one is far smaller) go on to the route, which reads and judges them."""
_JSON_TYPE = b"application/json"
# Every header of a refresh's answer after its length, in SecurityHeaders' order, built once.
_ANSWER_HEADERS = with_security_headers([(b"content-type", _JSON_TYPE)], api=True)
_SAMPLE_PATH = "/api/v1/activations/00000000-0000-0000-0000-000000000000/refresh"


class RefreshFastPath:
    """Answers well-formed activation refreshes before any other middleware; passes everything else on."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limit = min(MAX_FAST_BODY_BYTES, max_body_bytes)
        self._routes = routes
        self._open: bool | None = None

    def _unkeyed(self) -> bool:
        """Whether the gate lets a refresh through without an API key (it does: the secret is the credential).
        Decided on first use, as the gate decides, since routers are included after the middleware is added."""
        if self._open is None:
            keyed = keyed_routes(self._routes)
            self._open = not any("POST" in methods and pattern.match(_SAMPLE_PATH) for pattern, methods in keyed)
        return self._open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
            or (matched := _PATH.fullmatch(scope["path"])) is None
            or not self._plain(scope)
            or not self._unkeyed()
        ):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the route meets it as it would have
            body += message.get("body", b"")
            if len(body) > self.body_limit or not message.get("more_body", False):
                break
        complete = received[-1]["type"] == "http.request" and not received[-1].get("more_body")
        secret = _secret(body) if complete and len(body) <= self.body_limit else None
        if secret is None:
            await self.app(scope, _replaying(received, receive), send)
            return
        try:
            answer = await refresh_answer(scope["app"].state.activation, uuid.UUID(matched[1]), secret, _client(scope))
        except Exception as error:
            await _handled(scope, receive, send, error)
            return
        headers = [(b"content-length", str(len(answer)).encode()), *_ANSWER_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def _plain(self, scope: Scope) -> bool:
        """Exactly `application/json` (without a content type, FastAPI's strict default refuses the body), no
        `Origin` (for CORS), a Content-Length the gate accepts (the gate takes the last, Starlette the first
        content type)."""
        content_type = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"origin":
                return False
        return (
            content_type is not None
            and content_type.lower() == _JSON_TYPE
            and declared_length_problem(length, self.max_body_bytes) is None
        )


def _secret(body: bytes) -> str | None:
    """The secret of a body the route would accept as it is, else None."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None
    if type(parsed) is not dict or len(parsed) != 1:
        return None
    secret = parsed.get("secret")
    if type(secret) is not str or not 1 <= len(secret) <= SECRET_MAX_LENGTH or unclean_character(secret) is not None:
        return None
    return secret


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """The messages read so far, then the rest from the server."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _handled(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
    """Answered by the application's handler for the error, as the router's exception middleware would, with the
    security headers; errors without one go up to the server error middleware, as from the route."""
    handlers = scope["app"].exception_handlers
    for kind in type(error).__mro__:
        if kind is not Exception and kind in handlers:
            response = await handlers[kind](Request(scope, receive), error)
            await SecurityHeaders(response)(scope, receive, send)
            return
    raise error
