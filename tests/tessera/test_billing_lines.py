"""Billing lines: the migration fills them for terms that already bill, writers racing on one term leave one line
with the term's cells, and only billable terms have one."""

from __future__ import annotations

import asyncio
from datetime import date

from alembic import command
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.db import alembic_config, migrate
from tessera.models import SubscriptionTerm, TermKind
from tessera.reports.lines import write_lines
from tessera.reports.models import BillingLine
from tests.billing_lines import assert_lines_follow_terms
from tests.report_world import add_subscription, build_report_world

WRITERS = 8


async def _world(session: AsyncSession) -> None:
    world = await build_report_world(session)
    for start, terms in ((date(2026, 1, 1), 4), (date(2026, 2, 1), 2), (date(2026, 3, 1), 1)):
        await add_subscription(session, world, "C1", start, terms)
    await add_subscription(session, world, "C3", date(2026, 2, 1), 3, reseller="R2", currency="USD")
    # Imported terms ran before the subscription came over, a committed renewal has not begun: neither bills.
    await session.execute(
        update(SubscriptionTerm).where(SubscriptionTerm.term_no == 1, SubscriptionTerm.kind == TermKind.first)
        .where(SubscriptionTerm.first_day == date(2026, 1, 1)).values(kind=TermKind.imported)
    )  # fmt: skip
    await session.execute(update(SubscriptionTerm).where(SubscriptionTerm.term_no == 3).values(renewed_at=None))


async def _billable_terms(session: AsyncSession) -> int:
    query = (
        select(func.count())
        .select_from(SubscriptionTerm)
        .where(
            SubscriptionTerm.kind != TermKind.imported,
            (SubscriptionTerm.kind != TermKind.renewal) | SubscriptionTerm.renewed_at.is_not(None),
        )
    )
    return int(await session.scalar(query) or 0)


async def test_the_migration_writes_the_lines_of_terms_that_already_bill(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    async with sessions() as session, session.begin():
        await _world(session)
        await session.execute(delete(BillingLine))  # as before billing lines existed
    sessions.kw["bind"].sync_engine.dispose()  # the migration takes the schema; no pooled connection holds it
    config = alembic_config(database_url)
    try:
        await asyncio.to_thread(command.downgrade, config, "0015_first_activation")
    finally:
        await asyncio.to_thread(migrate, database_url)
    async with sessions() as session:
        billable = await _billable_terms(session)
    assert billable == 7  # 4 + 2 + 1 + 3 terms, less one imported and two committed renewals
    assert await assert_lines_follow_terms(sessions) == billable


async def test_writers_racing_on_the_same_terms_leave_one_line_each(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await _world(session)
        await session.execute(delete(BillingLine))  # the writers race to insert, then to update
    async with sessions() as session:
        term_ids = list((await session.scalars(select(SubscriptionTerm.id))).all())

    async def rewrite() -> None:
        async with sessions() as session, session.begin():
            await write_lines(session, term_ids)

    await asyncio.wait_for(asyncio.gather(*(rewrite() for _ in range(WRITERS))), timeout=60)
    async with sessions() as session:
        billable = await _billable_terms(session)
    assert await assert_lines_follow_terms(sessions) == billable == 7
