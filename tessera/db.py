"""Engine, sessions and migrations. Services flush; the unit of work (a request, an activity) commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import migrations
from tessera.settings import sync_database_url

# A package of its own, so that it ships inside an installed wheel as well as in a checkout.
MIGRATIONS_DIR = Path(migrations.__file__).parent


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL with synchronous=normal is several times faster than the defaults and still crash-safe;
    # foreign keys are off in SQLite unless asked for on every connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine(url: str, *, autocommit: bool = False) -> AsyncEngine:
    """The process's engine; with `autocommit`, one whose connections stay in autocommit (for one-statement
    transactions: no BEGIN, no COMMIT, and nothing to roll back when a connection returns to the pool).

    An autocommit engine on PostgreSQL does not ping a connection before handing it out (a round trip per
    checkout): its user retries a statement once when it fails on a dead connection (`is_disconnect`), which also
    invalidates every connection the pool held before.
    """
    # skip_autocommit_rollback: a connection in autocommit has no transaction to end, yet SQLAlchemy would still
    # call the driver's rollback when a connection closes (aiosqlite: a trip to its thread).
    autocommitting: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
        "skip_autocommit_rollback": True,
    }
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **(autocommitting if autocommit else {}))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if autocommit:
        return create_async_engine(url, pool_size=10, max_overflow=20, **autocommitting)
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def is_disconnect(error: BaseException) -> bool:
    """Whether a statement failed because its connection was dead (SQLAlchemy invalidated it)."""
    return isinstance(error, DBAPIError) and error.connection_invalidated


def add_sqlite_pragmas(engine: Engine) -> None:
    """The same pragmas for the blocking engine Alembic uses."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def insert_once(session: AsyncSession, table: Table, values: dict[str, Any], *, unique: str) -> bool:
    """INSERT unless a row with the same `unique` column exists, in one statement (ON CONFLICT DO NOTHING): True
    when this call wrote it. A concurrent twin waits for the first writer's transaction, then does nothing."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[unique]).returning(table.c.id)
    )
    return (await session.execute(statement)).first() is not None


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_database_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run on every start."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
