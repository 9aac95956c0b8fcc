"""The OpenAPI document as the API really behaves: problem responses, scopes, success codes.

Every operation gets the problem responses that follow from its shape, so a route added anywhere is
documented without work of its own: 401 and 403 when it takes an API key (missing or invalid key, missing
scope), 404 when it names an object in its path (an object out of reach is missing), 400 and 413 when it
takes a body (not UTF-8 JSON; too large), 422 when it takes any input. Codes particular to a route (409, 503, ...) are
declared on its decorator with `problems(...)`; every error response, declared or derived, is described
as `application/problem+json` with the one Problem schema and an example.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.middleware import api_routes
from api.problems import PROBLEM_MEDIA_TYPE, problem_body
from api.schemas.common import Problem
from tessera.errors import FieldIssue

DESCRIPTIONS = {
    400: "The body could not be read as JSON text (e.g. it is not UTF-8), or a header is malformed.",
    401: "No API key, or one that is unknown, revoked or expired.",
    403: "The key lacks the scope, or the caller may see the object but not do this to it.",
    404: "No such object, or one outside the caller's reach (the two look the same).",
    409: "The request conflicts with the current state (already exists, not waiting, still in use).",
    410: "It existed but is no longer valid (e.g. an expired invitation).",
    413: "The request body is larger than the server accepts.",
    422: "Invalid input; `errors` names each field (`query.<name>`, `header.<name>`, body paths).",
    429: "Too many attempts; `Retry-After` says how many seconds to wait.",
    503: "A service the request needs (Temporal) is unavailable; repeat the request later.",
}
_CODES = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    410: "gone",
    413: "payload-too-large",
    422: "invalid-input",
    429: "too-many-requests",
    503: "service-unavailable",
}


def problems(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a decorator: route-specific problem statuses, e.g. `problems(409, 503)`.

    A keyword `s409="..."` replaces the generic description of that status.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"description": described.get(f"s{status}", DESCRIPTIONS.get(status, "A problem."))}
    return out


def _example(status: int, path: str) -> dict[str, Any]:
    code = _CODES.get(status, "error")
    issues = [FieldIssue("query.limit", "Input should be less than or equal to 200")] if status == 422 else []
    detail = "; ".join(f"{issue.field}: {issue.message}" for issue in issues) or DESCRIPTIONS.get(status, "")
    return problem_body(status=status, code=code, detail=detail, instance=path, issues=issues)


def _scopes_by_operation(app: FastAPI) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for path, route in api_routes(app.routes):
        todo = list(route.dependant.dependencies)
        while todo:
            dependant = todo.pop()
            scope = getattr(dependant.call, "required_scope", None)
            if isinstance(scope, str):
                for method in route.methods or ():
                    found[(path, method.lower())] = scope
            todo.extend(dependant.dependencies)
    return found


def _document(schema: dict[str, Any], scopes: dict[tuple[str, str], str]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            statuses = {int(status) for status in responses if status.isdigit() and int(status) >= 400}
            if parameters or "requestBody" in operation:
                statuses.add(422)
            else:
                statuses.discard(422)
            if operation.get("security"):
                statuses |= {401, 403}
            if any(parameter.get("in") == "path" for parameter in parameters):
                statuses.add(404)
            if "requestBody" in operation:
                statuses |= {400, 413}
            for status in sorted(statuses):
                entry = responses.setdefault(str(status), {})
                if status == 422 or "content" not in entry:
                    entry["content"] = {
                        PROBLEM_MEDIA_TYPE: {
                            "schema": {"$ref": "#/components/schemas/Problem"},
                            "example": _example(status, path),
                        }
                    }
                if status == 422 or not entry.get("description"):
                    entry["description"] = DESCRIPTIONS.get(status, "A problem.")
            scope = scopes.get((path, method))
            if scope is not None:
                operation["x-required-scope"] = scope
                note = f"Needs an API key with the scope `{scope}` (or a `write` or `*` scope that covers it)."
                operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}".lstrip()


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI generator by one that documents problems and scopes (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            _document(schema, _scopes_by_operation(app))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
