"""Row locks taken before the reads a decision depends on, the same way on PostgreSQL and SQLite.

PostgreSQL: `SELECT ... FOR NO KEY UPDATE` (it does not block inserts whose foreign keys point at the row, so
an order naming a grant never waits for, or deadlocks with, a writer of that grant). Every statement after it
runs on a fresh snapshot under READ COMMITTED and sees what earlier lock holders committed.

SQLite has one writer for the whole file. Its driver runs reads before the first write outside any
transaction, so a read-then-write is never atomic by itself. Taking the writer first, with an UPDATE that
changes nothing, makes every later read in the transaction current until it commits — the same effect as
`BEGIN IMMEDIATE`, taken only by the transactions that need it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def lock_rows(session: AsyncSession, table: Table, ids: Collection[uuid.UUID]) -> None:
    """Hold the rows `ids` of `table` (by `id`) until the transaction ends; sorted, so two lockers never deadlock."""
    if not ids:
        return
    ordered = sorted(set(ids))
    if is_sqlite(session):
        unchanged: dict[str, Any] = {"id": table.c.id}
        if "updated_at" in table.c:
            unchanged["updated_at"] = table.c.updated_at  # a lock is not a change: keep the timestamp
        await session.execute(
            update(table).where(table.c.id.in_(ordered)).values(unchanged).execution_options(synchronize_session=False)
        )
        return
    await session.execute(
        select(table.c.id).where(table.c.id.in_(ordered)).order_by(table.c.id).with_for_update(key_share=True)
    )
