"""A pure-ASGI answer to `POST /api/v1/activations/{id}/refresh`, in front of the router.

Refresh is what devices call all day; through FastAPI it paid for route matching, dependency solving and the
request body machinery on every call. This middleware answers a well-formed refresh itself, with the route's
own service calls (`api.routes.activations.refresh_answer`) and the application's own exception handlers for
its problems. Whatever it cannot answer exactly as the route would, it passes on untouched to the router,
handing along any body it has read: another method, a query string, a root path, an id not in canonical form,
another content type or none, a body that is not `{"secret": <clean text of 1-200 characters>}`. Every malformed
request is therefore answered by the route, its 422s included, byte for byte as before. The route stays
registered, so the operation stays in the OpenAPI document. Installed inside the security headers and the
request gate, whose headers, size limit and counting apply to it as to every request.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routes.activations import refresh_answer as refresh_answer
from api.schemas.activations import SECRET_MAX_LENGTH
from tessera.schema_base import unclean_character

_PATH = re.compile(
    r"/api/v1/activations/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/refresh"
)
MAX_FAST_BODY_BYTES = 4096
"""Larger bodies (a valid one is far smaller) go on to the route, which reads and judges them."""
_JSON_TYPE = b"application/json"


class RefreshFastPath:
    """Answers well-formed activation refreshes before routing; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
            or (matched := _PATH.fullmatch(scope["path"])) is None
            or not _json(scope)
        ):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        try:
            while True:
                message = await receive()
                received.append(message)
                if message["type"] != "http.request":
                    break  # a disconnect: the route meets it as it would have
                body += message.get("body", b"")
                if len(body) > MAX_FAST_BODY_BYTES or not message.get("more_body", False):
                    break
        except Exception as error:  # the request gate's 413 for a streamed body beyond its limit
            await _handled(scope, receive, send, error)
            return
        complete = received[-1]["type"] == "http.request" and not received[-1].get("more_body")
        secret = _secret(body) if complete and len(body) <= MAX_FAST_BODY_BYTES else None
        if secret is None:
            await self.app(scope, _replaying(received, receive), send)
            return
        try:
            answer = await refresh_answer(scope["app"].state.activation, uuid.UUID(matched[1]), secret, _client(scope))
        except Exception as error:
            await _handled(scope, receive, send, error)
            return
        headers = [(b"content-length", str(len(answer)).encode()), (b"content-type", _JSON_TYPE)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def _json(scope: Scope) -> bool:
    """Exactly `application/json` (without a content type, FastAPI's strict default refuses the body)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.lower() == b"application/json")
    return False


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
    """Answered by the application's handler for the error, as the router's exception middleware would; errors
    without one go up to the server error middleware, as from the route."""
    handlers = scope["app"].exception_handlers
    for kind in type(error).__mro__:
        if kind is not Exception and kind in handlers:
            response = await handlers[kind](Request(scope, receive), error)
            await response(scope, receive, send)
            return
    raise error
