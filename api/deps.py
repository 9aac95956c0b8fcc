"""Request-scoped dependencies as `Annotated` aliases: the session (one unit of work), the caller, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tessera.apikeys import authenticate
from tessera.auth.ratelimit import SignInLimiter
from tessera.db import unit_of_work
from tessera.errors import FieldIssue, InvalidInput, NotAuthenticated
from tessera.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tessera.principal import Principal
from tessera.rights import acting, scopes
from tessera.settings import Settings


@dataclass
class AppState:
    """What the lifespan builds once per process."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    temporal: Client
    secret_key: bytes
    """The key ring (tessera.auth.keyring): the newest secret as bytes, the earlier ones for verifying."""
    sign_in_limiter: SignInLimiter


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.tessera
    return state


State = Annotated[AppState, Depends(app_state)]


async def session_dependency(state: State) -> AsyncIterator[AsyncSession]:
    """One session per request: the same unit of work as an activity's, committed when the route returns."""
    async with unit_of_work(state.session_factory) as session:
        yield session


Session = Annotated[AsyncSession, Depends(session_dependency)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer tsk_...`")


async def current_principal(
    state: State,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("send an API key as `Authorization: Bearer <key>`")
    return await authenticate(session, state.secret_key, credentials.credentials)


Caller = Annotated[Principal, Depends(current_principal)]


def scoped(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting keys whose scopes cover `scope`; what they may touch is decided in the service."""
    if scope not in scopes.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(caller: Caller) -> Principal:
        scopes.require_scope(caller, scope)
        return caller

    dependency.__name__ = f"scope_{scope.replace(':', '_').replace('-', '_')}"
    # Read by api/openapi.py, which writes each operation's scope into the OpenAPI document.
    setattr(dependency, "required_scope", scope)  # noqa: B010
    return dependency


async def catalog_writer(caller: Annotated[Principal, Depends(scoped("catalog:write"))]) -> Principal:
    acting.require_vendor_admin(caller, doing="change the catalog")
    return caller


CatalogReader = Annotated[Principal, Depends(scoped("catalog:read"))]
CatalogWriter = Annotated[Principal, Depends(catalog_writer)]
OrganizationsReader = Annotated[Principal, Depends(scoped("organizations:read"))]
OrganizationsWriter = Annotated[Principal, Depends(scoped("organizations:write"))]
UsersReader = Annotated[Principal, Depends(scoped("users:read"))]
UsersWriter = Annotated[Principal, Depends(scoped("users:write"))]
ApiKeysReader = Annotated[Principal, Depends(scoped("api-keys:read"))]
ApiKeysWriter = Annotated[Principal, Depends(scoped("api-keys:write"))]
TicketsReader = Annotated[Principal, Depends(scoped("tickets:read"))]
TicketsWriter = Annotated[Principal, Depends(scoped("tickets:write"))]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
DEFAULT_PAGE = DEFAULT_LIMIT


def _repeats(annotation: Any) -> bool:
    """Whether a query parameter of this type takes several values (`list[str] | None` does)."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_repeats(member) for member in get_args(annotation))
    return origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset, tuple)


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """Query parameters a route takes, each with whether it may repeat (list-typed)."""
    names = {param.alias: _repeats(param.field_info.annotation) for param in dependant.query_params}
    for sub in dependant.dependencies:
        names.update(_query_names(sub))
    return names


_known_queries: dict[int, dict[str, bool]] = {}


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not take, or repeated ones it takes once: nothing silently ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return  # the docs pages take what Swagger UI's OAuth redirect sends
    known = _known_queries.get(id(route))
    if known is None:
        known = _known_queries[id(route)] = _query_names(route.dependant)
    takes = ", ".join(sorted(known)) or "none"
    issues = [
        FieldIssue(f"query.{name}", f"unknown query parameter; this route takes: {takes}")
        for name in sorted(set(request.query_params))
        if name not in known
    ]
    issues += [
        FieldIssue(f"query.{name}", "given more than once; it takes one value")
        for name, repeatable in sorted(known.items())
        if not repeatable and len(request.query_params.getlist(name)) > 1
    ]
    if issues:
        raise InvalidInput("; ".join(f"{issue.field}: {issue.message}" for issue in issues[:5]), issues=issues)
