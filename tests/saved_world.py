"""The rights world, built through the services once per kind of database and copied into each test's database.

Building it takes some sixty flushes; copying it takes one multi-row insert per table. Each copy gets new ids,
API keys and ticket codes, as a fresh build would: tests share one Temporal server, where workflows are found by
organization id, and a ticket's encrypted code is bound to its id.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tessera.apikeys import KEY_PREFIX, keyed_hash, new_token
from tessera.auth.keyring import as_ring
from tessera.licenses import codes
from tessera.models import Base

if TYPE_CHECKING:
    from tests.conftest import RightsWorld

Rows = list[tuple[Table, list[dict[str, object]]]]


async def is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if await connection.scalar(select(func.count()).select_from(table)):
                return False
    return True


async def _all_rows(engine: AsyncEngine) -> Rows:
    rows: Rows = []
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            # Oldest first, so that an organization or a grant comes after the one it refers to.
            order = [table.c.created_at] if "created_at" in table.c else []
            found = [dict(row._mapping) for row in await connection.execute(select(table).order_by(*order))]
            if found:
                rows.append((table, found))
    return rows


def _renamed(value: object, ids: dict[uuid.UUID, uuid.UUID], texts: dict[str, str]) -> object:
    if isinstance(value, uuid.UUID):
        return ids.get(value, value)
    if isinstance(value, str):
        return texts.get(value, value)
    if isinstance(value, dict):
        return {key: _renamed(item, ids, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, ids, texts) for item in value]
    return value


@dataclass(frozen=True)
class SavedWorld:
    world: RightsWorld
    rows: Rows
    secret_key: bytes

    @classmethod
    async def capture(cls, engine: AsyncEngine, world: RightsWorld, secret_key: bytes) -> SavedWorld:
        """Every row of a database that holds the world and nothing else."""
        return cls(copy.deepcopy(world), await _all_rows(engine), secret_key)

    async def copy_into(self, engine: AsyncEngine) -> RightsWorld:
        """Insert a copy with new ids, keys and codes; return the world that names them."""
        world = copy.deepcopy(self.world)
        ids: dict[uuid.UUID, uuid.UUID] = {
            old: uuid.uuid4()
            for _table, rows in self.rows
            for row in rows
            if isinstance(old := row.get("id"), uuid.UUID)
        }
        texts = {str(old): str(new) for old, new in ids.items()}
        for names in (
            world.orgs,
            world.users,
            world.grants,
            world.tickets,
            world.service_keys,
            world.orders,
            world.licenses,
        ):
            names.update({name: ids[old] for name, old in names.items()})
        world.product_id, world.group_id = ids[world.product_id], ids[world.group_id]

        ring = as_ring(self.secret_key)
        key_names = {keyed_hash(ring.current, token): name for name, token in self.world.keys.items()}
        ticket_names = {ids[old]: name for name, old in self.world.tickets.items()}
        async with engine.begin() as connection:
            for table, rows in self.rows:
                fresh = [{column: _renamed(value, ids, texts) for column, value in row.items()} for row in rows]
                for row in fresh:
                    if table.name == "api_key" and row["secret_hash"] in key_names:
                        token = world.keys[key_names[row["secret_hash"]]] = new_token()
                        row["prefix"], row["secret_hash"] = (
                            token[: len(KEY_PREFIX) + 6],
                            keyed_hash(ring.current, token),
                        )
                    elif table.name == "ticket":
                        ticket_id = row["id"]
                        assert isinstance(ticket_id, uuid.UUID)
                        code = world.codes[ticket_names[ticket_id]] = codes.generate_code()
                        row["code_hash"] = codes.code_hash(self.secret_key, code)
                        row["code_encrypted"] = codes.encrypt_code(self.secret_key, ticket_id, code)
                await connection.execute(insert(table), fresh)
        return world
