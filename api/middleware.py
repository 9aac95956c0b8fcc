"""ASGI middleware that runs before any route: security headers, and the gate in front of request bodies.

The gate answers 401 to an authenticated route called without a well-formed `Authorization: Bearer tsk_...`
header, and 413 to a body larger than `TESSERA_MAX_BODY_BYTES`, both before a byte of the body is read, so
unauthenticated or oversized uploads cost the server nothing. Bodies without a Content-Length (chunked) are
counted as they stream in and cut off at the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import current_principal
from api.problems import PROBLEM_MEDIA_TYPE, problem_body

BEARER = re.compile(r"^Bearer +tsk_[A-Za-z0-9_-]{16,200} *$", re.IGNORECASE)
"""The shape of every key `tessera.apikeys` issues; anything else cannot authenticate."""

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
HTML_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
API_PREFIX = "/api/v1"


def _headers_of(message: Message) -> list[tuple[bytes, bytes]]:
    return list(message.get("headers", []))


class SecurityHeaders:
    """nosniff, no framing, a CSP on every response; `no-store` on every API response (they may carry secrets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope["path"]).startswith(API_PREFIX + "/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _headers_of(message)
                present = {name.lower() for name, _value in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                csp = HTML_CSP if content_type.startswith(b"text/html") else JSON_CSP
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", csp.encode()),
                ]
                if api:
                    wanted.append((b"cache-control", b"no-store"))
                headers += [(name, value) for name, value in wanted if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def requires_key(route: BaseRoute) -> bool:
    """Whether a route authenticates its caller: `current_principal` is somewhere in its dependencies."""
    if not isinstance(route, APIRoute):
        return False
    todo = list(route.dependant.dependencies)
    while todo:
        dependant = todo.pop()
        if dependant.call is current_principal:
            return True
        todo.extend(dependant.dependencies)
    return False


def api_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every API route, through included routers at any depth."""
    for route in routes:
        context = getattr(route, "include_context", None)
        if context is not None:
            yield from api_routes(route.original_router.routes, prefix + str(context.prefix))  # type: ignore[attr-defined]
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def keyed_routes(routes: Iterable[BaseRoute]) -> list[tuple[re.Pattern[str], set[str]]]:
    """(path pattern, methods) of every route that authenticates."""
    found: list[tuple[re.Pattern[str], set[str]]] = []
    for path, route in api_routes(routes):
        if requires_key(route):
            pattern, _format, _converters = compile_path(path)
            found.append((pattern, set(route.methods or ())))
    return found


def declared_length_problem(length: bytes | None, max_body_bytes: int) -> tuple[int, str, str] | None:
    """(status, code, detail) of the gate's answer to a request declaring this Content-Length, or None if its body
    may be read."""
    if length is None:
        return None
    try:
        declared = int(length)
    except ValueError:
        return 400, "bad-request", "the Content-Length header is not a number"
    if declared > max_body_bytes:
        return 413, "payload-too-large", f"the request body is larger than {max_body_bytes} bytes"
    return None


class RequestGate:
    """401 without a well-formed key, 413 beyond the size limit: decided before the body is read."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._routes = routes
        self._keyed: list[tuple[re.Pattern[str], set[str]]] | None = None

    def _needs_key(self, scope: Scope) -> bool:
        # Computed on first use: routers are included after the middleware is configured.
        if self._keyed is None:
            self._keyed = keyed_routes(self._routes)
        path, method = str(scope["path"]), str(scope["method"])
        return any(method in methods and pattern.match(path) for pattern, methods in self._keyed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        if scope["method"] != "OPTIONS" and self._needs_key(scope):
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            if not BEARER.match(authorization):
                await _problem(
                    scope,
                    send,
                    401,
                    "not-authenticated",
                    "send an API key as `Authorization: Bearer tsk_...`",
                    {"www-authenticate": "Bearer"},
                )
                return
        refused = declared_length_problem(headers.get(b"content-length"), self.max_body_bytes)
        if refused is not None:
            await _problem(scope, send, *refused)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as too_large:
            # Raised where nothing turned it into a response (outside a route): answer here if still possible.
            if started:
                raise
            await _problem(scope, send, 413, "payload-too-large", str(too_large.detail))


async def _problem(
    scope: Scope, send: Send, status: int, code: str, detail: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps(problem_body(status=status, code=code, detail=detail, instance=str(scope["path"]))).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        # The body was not read: the connection must not be reused for whatever the client still sends.
        (b"connection", b"close"),
    ]
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
