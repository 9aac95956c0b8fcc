"""A pure-ASGI answer to `POST /api/v1/activations/{id}/refresh`, in front of the whole middleware stack.

Refresh is what devices call all day; through FastAPI it paid for route matching, dependency solving and the
request body machinery on every call, and for every middleware's wrapping of `receive` and `send`. This middleware,
the outermost, answers a well-formed refresh itself, with the route's own service calls
(`api.routes.activations.refresh_answer`) and the application's own exception handlers for its problems.

What the rest of the stack (security headers, CORS, the request gate) does to such a request is taken from the
stack itself rather than written out again: at the first refresh, a stand-in answer is sent once through new
instances of the application's other middleware, and the headers they leave are the ones every refresh's answer
carries from then on (they depend on nothing a well-formed refresh varies in); had the gate refused the stand-in,
no refresh would be answered here. A problem is sent through those same middleware. The gate's checks before
the body are its own function (`declared_length_problem`), and no more body is read than it allows.

Whatever it cannot answer exactly as the full stack would, it passes on untouched, handing along any body it has
read: another method, a query string, a root path, an id not in canonical form, another content type or none, an
`Origin` (CORS answers for it), a Content-Length the gate refuses, a body that is not
`{"secret": <clean text of 1-200 characters>}` or larger than the gate allows. The gate, the route and its 422s
therefore answer every irregular request byte for byte as before. The route stays registered, so the operation
stays in the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import declared_length_problem
from api.routes.activations import refresh_answer as refresh_answer
from api.schemas.activations import SECRET_MAX_LENGTH
from tessera.schema_base import unclean_character

_PATH = re.compile(
    r"/api/v1/activations/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/refresh"
)
MAX_FAST_BODY_BYTES = 4096
"""Larger bodies (a valid one is far smaller) go on to the route, which reads and judges them."""
_JSON_TYPE = b"application/json"
_EMPTY_LENGTH = (b"content-length", b"0")
_ANSWER = "tessera.fast_refresh.answer"
"""The scope key under which the answer travels through the other middleware (see `_answer`)."""


class RefreshFastPath:
    """Answers well-formed activation refreshes before any other middleware; passes everything else on."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limit = min(MAX_FAST_BODY_BYTES, max_body_bytes)
        self._around: ASGIApp | None = None
        """The application's other middleware around `_answer`: what the stack does to an answer."""
        self._headers: list[tuple[bytes, bytes]] | None = None
        """The headers of every answer, its length at `_length_at`; empty if the stack refuses refreshes."""
        self._length_at = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
            or (matched := _PATH.fullmatch(scope["path"])) is None
            or not self._plain(scope)
            or not (template := self._headers if self._headers is not None else await self._probe(scope))
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
            await self._handled(scope, receive, send, error)
            return
        headers = list(template)
        headers[self._length_at] = (b"content-length", str(len(answer)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def _plain(self, scope: Scope) -> bool:
        """Exactly `application/json` (without a content type, FastAPI's strict default refuses the body), no
        `Origin` (for CORS), a Content-Length the gate accepts. Of several, the gate reads the last Content-Length
        and Starlette the first content type."""
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

    def _stack(self, scope: Scope) -> ASGIApp:
        """The middleware added after this one (outermost first), new instances around `_answer`, built once."""
        if self._around is None:
            middleware = list(scope["app"].user_middleware)
            around: ASGIApp = _answer
            for cls, args, kwargs in reversed(middleware[[m.cls for m in middleware].index(type(self)) + 1 :]):
                around = cls(around, *args, **kwargs)
            self._around = around
        return self._around

    async def _probe(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The headers the stack gives a refresh's answer (empty if it refuses the request), from a stand-in."""
        sent: list[Message] = []
        # As the route answers (`Response(answer, media_type="application/json")`), with an empty body.
        stand_in = Response(b"", media_type="application/json")

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def keep(message: Message) -> None:
            sent.append(message)

        bare = {**scope, "headers": [(b"content-type", _JSON_TYPE)], _ANSWER: stand_in}
        await self._stack(scope)(bare, nothing, keep)
        start = sent[0]
        headers = [(bytes(name), bytes(value)) for name, value in start["headers"]]
        if start["status"] != 200 or _EMPTY_LENGTH not in headers:
            headers = []
        else:
            self._length_at = headers.index(_EMPTY_LENGTH)
        self._headers = headers
        return headers

    async def _handled(self, scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
        """Answered by the application's handler for the error, as the router's exception middleware would, through
        the other middleware; errors without one go up to the server error middleware, as from the route."""
        handlers = scope["app"].exception_handlers
        for kind in type(error).__mro__:
            if kind is not Exception and kind in handlers:
                response = await handlers[kind](Request(scope, receive), error)
                await self._stack(scope)({**scope, _ANSWER: response}, receive, send)
                return
        raise error


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    """The innermost application of `_stack`: the answer the fast path put in the scope."""
    await scope[_ANSWER](scope, receive, send)


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
