"""The two apps `bench/activations.py` loads, as uvicorn factories reading the environment like `tessera api`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import Table, select

from api.app import create_app
from tessera.activation.models import Activation
from tessera.db import create_engine, create_session_factory, unit_of_work
from tessera.settings import get_settings

_activation: Table = Activation.__table__  # type: ignore[assignment]
_ONE_ROW = select(_activation.c.id, _activation.c.status, _activation.c.seq, _activation.c.container_id)


def tessera_app() -> FastAPI:
    return create_app(get_settings())


def floor_app() -> FastAPI:
    """One endpoint reading one row by primary key: the same engine, session and unit of work as the API's."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        app.state.sessions = create_session_factory(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/floor/{activation_id}")
    async def read_one(activation_id: uuid.UUID, request: Request) -> dict[str, Any]:
        """One activation row, by its id."""
        async with unit_of_work(request.app.state.sessions) as session:
            row = (await session.execute(_ONE_ROW.where(_activation.c.id == activation_id))).one()
        return {"id": str(row.id), "status": row.status, "seq": row.seq, "container_id": row.container_id}

    return app
