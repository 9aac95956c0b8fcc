"""Request-scoped dependencies as `Annotated` aliases: the session (one unit of work), the caller, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tessera.apikeys import authenticate
from tessera.errors import Forbidden, NotAuthenticated
from tessera.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tessera.principal import Principal
from tessera.settings import Settings


@dataclass
class AppState:
    """What the lifespan builds once per process."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    temporal: Client
    secret_key: bytes


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.tessera
    return state


State = Annotated[AppState, Depends(app_state)]


async def session_dependency(state: State) -> AsyncIterator[AsyncSession]:
    """One session per request; committed when the route returns, rolled back when it raises."""
    async with state.session_factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


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


async def vendor_admin(caller: Caller) -> Principal:
    if not caller.vendor_admin:
        raise Forbidden("only vendor administrators may change the catalog")
    return caller


VendorAdmin = Annotated[Principal, Depends(vendor_admin)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
DEFAULT_PAGE = DEFAULT_LIMIT
