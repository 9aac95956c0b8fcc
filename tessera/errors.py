"""One error hierarchy: each class carries its HTTP status and a stable machine code.

`api/` renders these as RFC 9457 problem details; nothing below `api/` knows about HTTP beyond these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one input field; `field` is a dotted path such as `products.2.fields.0.default`."""

    field: str
    message: str
    line: int | None = None
    column: int | None = None
    file: str | None = None

    def where(self) -> str:
        place = self.file or ""
        if self.line is not None:
            place += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return place


class TesseraError(Exception):
    """Base of every error the domain raises on purpose."""

    status: int = 500
    code: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, issues: list[FieldIssue] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.issues = issues or []


class InvalidInput(TesseraError):
    status = 422
    code = "invalid-input"
    title = "Invalid input"


class ConfigError(InvalidInput):
    """A configuration file (catalog, workflows) is invalid; `issues` name file, line and field."""

    code = "invalid-config"
    title = "Invalid configuration"

    def __str__(self) -> str:
        lines = [self.detail]
        lines += [f"  {issue.where()}: {issue.field}: {issue.message}" for issue in self.issues]
        return "\n".join(lines)


class NotAuthenticated(TesseraError):
    status = 401
    code = "not-authenticated"
    title = "Not authenticated"


class Forbidden(TesseraError):
    """The caller can see the object but may not do this to it."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(TesseraError):
    """Missing, or outside the caller's reach: the two are deliberately indistinguishable."""

    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(TesseraError):
    status = 409
    code = "conflict"
    title = "Conflict"
