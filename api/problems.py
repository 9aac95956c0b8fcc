"""Every error as RFC 9457 problem details (`application/problem+json`) with a stable `code`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tessera.errors import FieldIssue, TesseraError
from tessera.schema_base import key_path, one_per_field

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_LISTED_ISSUES = 50
"""Problem details list at most this many field problems; `errors_omitted` counts the rest."""
_HTTP_CODES = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    title: str | None = None,
    issues: Sequence[FieldIssue] = (),
) -> dict[str, Any]:
    """The JSON of a problem; shared by the exception handlers and the middleware that answers early."""
    body: dict[str, Any] = {
        "type": f"urn:tessera:problem:{code}",
        "title": title or code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }
    if issues:
        # A body with a million bad entries must not come back a million times longer.
        body["errors"] = [{"field": issue.field, "message": issue.message} for issue in issues[:MAX_LISTED_ISSUES]]
        if len(issues) > MAX_LISTED_ISSUES:
            body["errors_omitted"] = len(issues) - MAX_LISTED_ISSUES
    return body


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    issues: Sequence[FieldIssue] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(status=status, code=code, title=title, detail=detail, instance=request.url.path, issues=issues)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_of(loc: Sequence[str | int], body: Any) -> str:
    # "body" is where nearly every field lives; keeping query/path/header tells the caller where to look.
    parts = list(loc)
    if loc and loc[0] == "body":
        # Only keys the caller wrote: pydantic adds union member and validator names to locations.
        parts = key_path(body, loc[1:]) if body is not None else parts[1:]
    return ".".join(str(part) for part in parts) or "(body)"


def _validation_message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    return str(error["msg"]).removeprefix("Value error, ")


def install_problem_handlers(app: FastAPI) -> None:
    async def tessera_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TesseraError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            headers = {"Retry-After": str(retry_after)}
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            issues=exc.issues,
            headers=headers,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        issues = one_per_field(
            [FieldIssue(_field_of(e["loc"], exc.body), _validation_message(e)) for e in exc.errors()]
        )
        content_type = request.headers.get("content-type", "")
        if issues and issues[0].field == "(body)" and content_type and "json" not in content_type.lower():
            # A form or text body is read as "not an object"; say what the API wants instead.
            wanted = f"send the body as JSON (Content-Type: application/json), not {content_type}"
            issues = [FieldIssue("(body)", wanted)]
        detail = "; ".join(f"{issue.field}: {issue.message}" for issue in issues[:5])
        return problem_response(
            request, status=422, code="invalid-input", title="Invalid input", detail=detail, issues=issues
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http-error")
        return problem_response(
            request,
            status=exc.status_code,
            code=code,
            title=code.replace("-", " ").capitalize(),
            detail=str(exc.detail),
            headers=dict(exc.headers or {}) or None,
        )

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            request,
            status=500,
            code="internal-error",
            title="Internal error",
            detail="an unexpected error occurred; it has been logged",
        )

    app.add_exception_handler(TesseraError, tessera_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
