"""CSV written by PostgreSQL itself is byte for byte the CSV the row path writes, on data made to trip it:
quotes, commas, line breaks and formula starts in every free-text cell, currencies with 0 and 3 decimals,
prices with more places than the currency, zero amounts reversed, a missing material number, a group, a direct
sale, a reseller change, recorded runs and their reversals."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import String, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Organization, Product, Subscription, SubscriptionStatus, SubscriptionTerm
from tessera.reports import csv_sql
from tessera.reports.formats import csv_line
from tessera.reports.periods import active_day, renewal_month
from tessera.reports.queries import Scope, _money
from tessera.reports.recording import record_report
from tessera.reports.resellers import change_reseller
from tessera.reports.service import Manifest, ReportRequest, new_manifest, prepare_format, stream_report
from tests.report_world import ZONE, ReportWorld, add_subscription, at, build_report_world, rewrite_lines, utc

CONFIG_REPORTS = Path(__file__).resolve().parents[2] / "config" / "reports"
NOW = utc(2030, 1, 1)

AWKWARD = [
    "",
    "plain",
    "=1+1",
    "+49 30 1234",
    "-12",
    "-12.50",
    "-1.",
    "-12\n",
    "-\u0663",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "'quoted'",
    'say "hi"',
    "a,b",
    "line\r\nbreak",
    "only\nnewline",
    '=HYPERLINK("x","y"),z',
    "Müller & Söhne",
    "  spaces  ",
    "\\backslash\\",
    "ünïcødé 漢字",
]


async def _produce(
    sessions: async_sessionmaker[AsyncSession], request: ReportRequest, in_database: bool
) -> tuple[bytes, Manifest]:
    prepared = dataclasses.replace(await prepare_format(CONFIG_REPORTS, "csv"), in_database=in_database)
    manifest = new_manifest(request, prepared)
    data = b"".join([chunk async for chunk in stream_report(sessions, request, prepared, manifest)])
    return data, manifest


async def _same_both_ways(sessions: async_sessionmaker[AsyncSession], request: ReportRequest) -> bytes:
    by_rows, row_manifest = await _produce(sessions, request, in_database=False)
    by_database, database_manifest = await _produce(sessions, request, in_database=True)
    assert by_database == by_rows
    assert database_manifest.as_dict() == row_manifest.as_dict()
    return by_database


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> ReportWorld:
    async with sessions() as session, session.begin():
        return await build_report_world(session)


async def _awkward_world(session: AsyncSession, world: ReportWorld) -> list[object]:
    names = {"R1": 'Reseller "One", Ltd', "C1": "=cmd|' /C calc'!A0", "R2": "-R2\r\nsecond line", "D": "'direct"}
    for name, value in names.items():
        await session.execute(update(Organization).where(Organization.id == world.orgs[name]).values(name=value))
    await session.execute(update(Organization).where(Organization.id == world.orgs["R2"]).values(erp_customer_no="+R2"))
    await session.execute(
        update(Product).where(Product.id == world.product_id).values(code='@SUB,"CAD"', erp_material_no=None)
    )
    subscriptions: list[object] = []
    customers = ["C1", "G1", "C3", "D"]
    prices = [("120.00", "EUR"), ("1500", "JPY"), ("12.3456", "KWD"), ("0.00", "USD"), ("99.5", "EUR")]
    for index, ref in enumerate(AWKWARD):
        customer = customers[index % len(customers)]
        price, currency = prices[index % len(prices)]
        reseller = {"C1": "R1", "G1": "R1", "C3": "R2", "D": None}[customer]
        subscriptions.append(
            await add_subscription(
                session, world, customer, date(2026, 2, 1), 2, reseller=reseller, price=price, currency=currency,
                external_ref=ref or None,
            )
        )  # fmt: skip
    # Not reported: a pending one.
    await add_subscription(session, world, "C1", date(2026, 2, 1), 2, status=SubscriptionStatus.pending)
    # Long second terms for the first few, so a revocation in April falls within the term (a reversal).
    for subscription in subscriptions[:5]:
        await session.execute(
            update(SubscriptionTerm)
            .where(SubscriptionTerm.subscription_id == subscription, SubscriptionTerm.term_no == 2)
            .values(ends_at=at(date(2027, 3, 1)), valid_through=date(2027, 2, 28))
        )
    await rewrite_lines(session)
    await change_reseller(session, subscriptions[6], world.orgs["R2"], at(date(2026, 2, 10)))  # type: ignore[arg-type]
    await change_reseller(session, subscriptions[7], None, at(date(2026, 2, 10)))  # type: ignore[arg-type]
    return subscriptions


async def test_sql_written_csv_is_byte_identical_to_the_row_path(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sessions() as session, session.begin():
        subscriptions = await _awkward_world(session, world)
    database_runs: list[object] = []
    write_csv = csv_sql.write_csv

    def counting_write_csv(*args: object, **kwargs: object) -> object:
        database_runs.append(args)
        return write_csv(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_sql, "write_csv", counting_write_csv)
    march = renewal_month("2026-03", ZONE)
    data = await _same_both_ways(sessions, ReportRequest(march, Scope(), "csv"))
    assert data.count(b"\r\nREN-") == len(AWKWARD)
    await _same_both_ways(sessions, ReportRequest(march, Scope(world.orgs["R1"]), "csv"))
    for day in (date(2026, 3, 15), date(2026, 2, 11)):
        await _same_both_ways(sessions, ReportRequest(active_day(day, ZONE), Scope(), "csv"))
        await _same_both_ways(sessions, ReportRequest(active_day(day, ZONE), Scope(world.orgs["R2"]), "csv"))
    billed = await record_report(sessions, march, "csv", tmp_path, CONFIG_REPORTS, NOW)
    async with sessions() as session, session.begin():
        for subscription in subscriptions[:5]:
            await session.execute(
                update(Subscription).where(Subscription.id == subscription).values(revoked_at=utc(2026, 4, 15))
            )
    april = renewal_month("2026-04", ZONE)
    reversals = await _same_both_ways(sessions, ReportRequest(april, Scope(), "csv"))
    assert reversals.count(b"\r\nREV-") == 5
    assert b"-0.00" in reversals  # a free renewal reversed: -0.00, as Decimal prints it
    recorded = await record_report(sessions, april, "csv", tmp_path, CONFIG_REPORTS, NOW)
    await _same_both_ways(sessions, ReportRequest(april, Scope(), "csv", recorded.report_id))
    await _same_both_ways(sessions, ReportRequest(march, Scope(), "csv", billed.report_id))
    dialect = sessions.kw["bind"].dialect.name
    assert (len(database_runs) >= 7) if dialect == "postgresql" else not database_runs


async def test_sql_cells_and_amounts_match_the_python_ones(sessions: async_sessionmaker[AsyncSession]) -> None:
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the records are written in SQL on PostgreSQL only")
    amounts = ["0", "0.0000", "120.0000", "99.5000", "12.3456", "1500.0000", "0.1000", "-5.2500", "1234567.8900"]
    currencies = ["EUR", "JPY", "KWD", "XYZ", None]
    async with sessions() as session:
        for cell in AWKWARD:
            expected = csv_line([cell, "x"]).removesuffix(",x\r\n")  # csv_line defuses every cell
            assert await session.scalar(select(csv_sql.free_text(literal(cell)))) == expected, repr(cell)
        for amount in amounts:
            for currency in currencies:
                for sign in (1, -1):
                    value = literal(Decimal(amount), SubscriptionTerm.amount.type)
                    money = csv_sql.money(value, literal(currency, String(3)), sign)
                    found = await session.scalar(select(money))
                    assert found == _money(amount, currency, sign), (amount, currency, sign)


async def test_a_vendor_in_another_zone_gets_commitment_days_of_its_zone(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    # Lines keep the commitment's day in the vendor's zone of the day they were written; a report in another
    # zone works the day out again. Commitments at Berlin's midnight fall on the day before in Los Angeles.
    async with sessions() as session, session.begin():
        for day in (3, 10, 20):
            await add_subscription(session, world, "C1", date(2026, 2, day), 2)
        await session.execute(
            update(Organization).where(Organization.id == world.orgs["V"]).values(timezone="America/Los_Angeles")
        )
    march = renewal_month("2026-03", "America/Los_Angeles")
    data = await _same_both_ways(sessions, ReportRequest(march, Scope(), "csv"))
    assert data.count(b"\r\nREN-") == 3
    assert b",2026-02-20,2026-03-03," in data  # committed on 21 February in Berlin, the 20th in Los Angeles
