"""Shapes every resource shares: pages, and the problem details every error is answered with."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class ProblemIssue(BaseModel):
    """One problem with one input field."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path: `fields.trial_days`, `query.cursor`, `header.Idempotency-Key`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, sent as `application/problem+json`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="`urn:tessera:problem:<code>`.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable code, e.g. `invalid-input`, `not-found`.")
    instance: str = Field(description="The path of the request.")
    errors: list[ProblemIssue] | None = Field(
        default=None, description="Field by field, for invalid input; at most 50 (see `errors_omitted`)."
    )
    errors_omitted: int | None = Field(default=None, description="How many further field problems were not listed.")


class HealthCheck(BaseModel):
    ok: bool
    error: str | None = Field(default=None, description="The kind of failure, when not ok.")
    namespace: str | None = Field(default=None, description="Temporal only: the namespace used.")


class HealthRead(BaseModel):
    """What `GET /healthz` answers, with 200 when everything answers and 503 otherwise."""

    status: Literal["ok", "unavailable"]
    database: HealthCheck
    temporal: HealthCheck
