"""The invariant of billing lines: every billable term has exactly its line, with the cells its term has now,
and nothing else has one. Checked after tests that drive terms through the real services and workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import SubscriptionTerm
from tessera.reports.lines import billable, line_source, line_values
from tessera.reports.models import BillingLine

NOT_COMPARED = datetime(2000, 1, 1, tzinfo=UTC)
"""When a line was written is the writer's clock, not something its term determines."""


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    # Ids as text and amounts as numbers: SQLite hands back what PostgreSQL types for us.
    return {key: (str(value) if key.endswith("_id") and value is not None else value) for key, value in values.items()}


async def assert_lines_follow_terms(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Returns how many lines were checked (so a test can tell it checked some)."""
    async with sessions() as session:
        expected = {
            str(row["term_id"]): _comparable(line_values(row, NOT_COMPARED))
            for row in (await session.execute(line_source())).mappings().all()
        }
        table: Any = BillingLine.__table__
        stored = {
            str(row["term_id"]): _comparable({**dict(row), "written_at": NOT_COMPARED})
            for row in (await session.execute(select(table))).mappings().all()
        }
        not_billable = set(
            map(str, (await session.scalars(select(SubscriptionTerm.id).where(~billable(SubscriptionTerm)))).all())
        )
    assert not (set(stored) & not_billable), "a term that does not bill has a billing line"
    assert set(stored) == set(expected), "billable terms and billing lines differ"
    for term_id, values in expected.items():
        assert stored[term_id] == values, term_id
    return len(expected)
