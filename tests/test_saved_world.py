"""The copied rights world (tests/saved_world.py) is the built one under new ids, keys and codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tessera.apikeys import authenticate
from tessera.db import create_engine, create_session_factory
from tessera.errors import NotAuthenticated
from tessera.licenses.codes import decrypt_code
from tessera.models import Base, Grant, Organization, Ticket
from tests.conftest import TEST_SECRET, RightsWorld, _truncate_postgres
from tests.saved_world import SavedWorld, is_empty


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            table.name: len((await connection.execute(select(table))).all()) for table in Base.metadata.sorted_tables
        }


async def test_a_copy_has_the_built_rows_under_new_names(
    engine: AsyncEngine, rights_world: RightsWorld, database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    saved = await SavedWorld.capture(engine, rights_world, TEST_SECRET)
    built = await _counts(engine)
    if engine.dialect.name == "sqlite":  # an empty database of the same kind for the copy
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "copy.db")
        empty_url = f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}"
    else:
        _truncate_postgres(database_url)
        empty_url = database_url
    target = create_engine(empty_url)
    try:
        assert await is_empty(target)
        copy = await saved.copy_into(target)
        assert await _counts(target) == built
        await _check(target, rights_world, copy)
    finally:
        await target.dispose()


async def _check(engine: AsyncEngine, rights_world: RightsWorld, copy: RightsWorld) -> None:
    for names in ("orgs", "users", "grants", "tickets", "service_keys", "orders", "licenses"):
        original, copied = getattr(rights_world, names), getattr(copy, names)
        assert original.keys() == copied.keys()
        assert not set(original.values()) & set(copied.values()), names
    assert copy.product_id != rights_world.product_id
    assert set(copy.keys.values()).isdisjoint(rights_world.keys.values())
    assert set(copy.codes.values()).isdisjoint(rights_world.codes.values())

    async with create_session_factory(engine)() as session:
        admin = await authenticate(session, TEST_SECRET, copy.keys["customer_admin"])
        assert admin.user_id == copy.users["customer_admin"]
        with pytest.raises(NotAuthenticated):
            await authenticate(session, TEST_SECRET, copy.keys["revoked_key"])
        for name, ticket_id in copy.tickets.items():
            ticket = await session.get(Ticket, ticket_id)
            assert ticket is not None
            assert decrypt_code(TEST_SECRET, ticket.id, ticket.code_encrypted) == copy.codes[name]
        child = await session.get(Organization, copy.orgs["C1"])
        assert child is not None
        assert child.parent_id == copy.orgs["R1"]
        delegated = await session.get(Grant, copy.grants["C1"])
        assert delegated is not None
        assert delegated.parent_grant_id == copy.grants["R1"]
