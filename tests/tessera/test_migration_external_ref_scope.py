"""Migration 0005 gives every existing order with an external_ref its scope: the organization below the root."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tessera.db import migrate
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema yet), on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"tessera_mig_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if REQUIRE_POSTGRES:
            pytest.fail(str(error))
        pytest.skip(str(error))
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{POSTGRES_URL.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_orders_get_the_scope_of_their_top_level_organization(fresh_url: str) -> None:
    migrate(fresh_url, "0003")
    engine = sa.create_engine(fresh_url.replace("+aiosqlite", ""))
    sqlite = fresh_url.startswith("sqlite")

    def bind(values: dict[str, Any]) -> dict[str, Any]:
        # Raw SQL on SQLite sees UUIDs as SQLAlchemy stores them there: 32 hex digits.
        return {k: v.hex if sqlite and isinstance(v, uuid.UUID) else v for k, v in values.items()}

    vendor, reseller, customer, group, product_group, product = (uuid.uuid4() for _ in range(6))
    deep, own, unreferenced = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = "CURRENT_TIMESTAMP"
    with engine.begin() as db:
        for org, kind, parent in (
            (vendor, "vendor", None),
            (reseller, "reseller", vendor),
            (customer, "customer", reseller),
            (group, "group", customer),
        ):
            db.execute(
                sa.text(
                    "INSERT INTO organization (id, kind, parent_id, name, timezone, locale, custom_fields, "
                    f"created_at, updated_at) VALUES (:i, :k, :p, 'n', 'UTC', 'en', '{{}}', {now}, {now})"
                ),
                bind({"i": org, "k": kind, "p": parent}),
            )
        db.execute(
            sa.text(
                "INSERT INTO product_group (id, code, name, created_at, updated_at) "
                f"VALUES (:i, 'G', '{{}}', {now}, {now})"
            ),
            bind({"i": product_group}),
        )
        db.execute(
            sa.text(
                "INSERT INTO product (id, code, group_id, name, description, kind, container_kinds, max_activations, "
                f"fields, modules, created_at, updated_at) VALUES (:i, 'P', :g, '{{}}', '{{}}', 'perpetual', '[]', 1, "
                f"'[]', '[]', {now}, {now})"
            ),
            bind({"i": product, "g": product_group}),
        )
        for order, org, ref in ((deep, group, "A"), (own, vendor, "B"), (unreferenced, reseller, None)):
            db.execute(
                sa.text(
                    "INSERT INTO order_ (id, organization_id, product_id, fields, modules, quantity, allocation, "
                    "visibility, external_ref, status, trail, created_at, updated_at) VALUES (:i, :o, :p, '{}', "
                    f"'[]', 1, 'organization', 'all_members', :e, 'fulfilled', '[]', {now}, {now})"
                ),
                bind({"i": order, "o": org, "p": product, "e": ref}),
            )
    migrate(fresh_url)
    with engine.begin() as db:
        rows = db.execute(sa.text("SELECT id, external_ref_scope_id FROM order_")).all()
    engine.dispose()

    def as_uuid(value: object) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(str(value))

    scopes = {as_uuid(order): as_uuid(scope) for order, scope in rows}
    assert scopes == {deep: reseller, own: vendor, unreferenced: None}
