"""`INSERT ... ON CONFLICT DO NOTHING RETURNING id`, the same on PostgreSQL and SQLite.

A claim that must be made once (a nonce, a first signing key) is an insert that either wins or finds the row
there. Not a savepoint: SQLite's driver opens no transaction before a SAVEPOINT, so releasing it would commit
everything the transaction had done. On PostgreSQL a conflicting insert in flight is waited for, and a rolled back
one leaves the way free.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_unless_present(
    session: AsyncSession, table: Table, values: dict[str, Any], conflict_column: str
) -> uuid.UUID | None:
    """The new row's id, or None when a row with the same `conflict_column` exists (or was just committed)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table).values(**values).on_conflict_do_nothing(index_elements=[conflict_column]).returning(table.c.id)
    )
    found = await session.scalar(statement)
    return None if found is None else uuid.UUID(str(found))
