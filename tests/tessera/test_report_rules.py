"""Billing report rules, table by table, on SQLite and PostgreSQL: periods, reversals, currencies, day D."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.errors import InvalidInput
from tessera.models import Product, Subscription, SubscriptionStatus, SubscriptionTerm
from tessera.reports.formats import undefuse
from tessera.reports.models import Report, ReportedRenewal
from tessera.reports.periods import ReportKind, active_day, parse_day, renewal_month, renewal_period, scheduled_period
from tessera.reports.queries import Scope
from tessera.reports.recording import record_report
from tessera.reports.resellers import change_reseller
from tessera.reports.service import Manifest, ReportRequest, new_manifest, prepare_format, stream_report
from tests.report_world import CMD, ZONE, ReportWorld, add_subscription, at, build_report_world, rewrite_lines, utc

CONFIG_REPORTS = Path(__file__).resolve().parents[2] / "config" / "reports"
NOW = utc(2030, 1, 1)


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> ReportWorld:
    async with sessions() as session, session.begin():
        return await build_report_world(session)


async def produce(sessions: async_sessionmaker[AsyncSession], request: ReportRequest) -> tuple[bytes, Manifest]:
    prepared = await prepare_format(CONFIG_REPORTS, request.format)
    manifest = new_manifest(request, prepared)
    data = b"".join([chunk async for chunk in stream_report(sessions, request, prepared, manifest)])
    return data, manifest


async def rows_of(sessions: async_sessionmaker[AsyncSession], request: ReportRequest) -> list[dict[str, str]]:
    data, _ = await produce(sessions, ReportRequest(request.period, request.scope, "json", request.report_id))
    rows: list[dict[str, str]] = json.loads(data)["rows"]
    return rows


def renewals(first: date, end: date) -> ReportRequest:
    return ReportRequest(renewal_period(first, end, ZONE), Scope(), "csv")


def active(on: date, reseller: uuid.UUID | None = None) -> ReportRequest:
    return ReportRequest(active_day(on, ZONE), Scope(reseller), "csv")


# --- renewals ----------------------------------------------------------------------------------------------------


async def test_periods_are_half_open_and_a_renewal_exactly_at_to_belongs_to_the_next(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        # Term 2 starts 2026-03-01 local (the period's `to`), term 3 on 2026-04-01.
        subscription = await add_subscription(session, world, "C1", date(2026, 2, 1), 3, external_ref="PO-7")
    march = await rows_of(sessions, renewals(date(2026, 2, 1), date(2026, 3, 1)))
    assert march == []
    rows = await rows_of(sessions, renewals(date(2026, 3, 1), date(2026, 4, 1)))
    assert [row["row_id"] for row in rows] == [f"REN-{subscription}-2"]
    row = rows[0]
    assert row["reseller_id"] == str(world.orgs["R1"])
    assert row["reseller_erp_no"] == "R-1"
    assert row["customer_id"] == str(world.orgs["C1"])
    assert row["customer_erp_no"] == "C-1"
    assert (row["previous_first_day"], row["previous_valid_through"]) == ("2026-02-01", "2026-02-28")
    assert (row["first_day"], row["valid_through"]) == ("2026-03-01", "2026-03-31")
    assert (row["committed_on"], row["effective_on"]) == ("2026-02-19", "2026-03-01")
    assert (row["product_code"], row["erp_material_no"], row["quantity"]) == ("SUB-CAD", "MAT-100", "2")
    assert (row["unit_price"], row["net_amount"], row["currency"], row["external_ref"]) == (
        "120.00",
        "240.00",
        "EUR",
        "PO-7",
    )
    # Local midnight in Berlin is 23:00 UTC the day before: the period is the vendor's days, not UTC's.
    assert at(date(2026, 3, 1)) == utc(2026, 2, 28, 23)


async def test_a_group_orders_the_end_customer_is_its_customer(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        await add_subscription(session, world, "G1", date(2026, 2, 1), 2)
    [row] = await rows_of(sessions, renewals(date(2026, 3, 1), date(2026, 4, 1)))
    assert row["customer_id"] == str(world.orgs["C1"])


async def test_two_currencies_have_their_own_totals_and_the_catalog_price_does_not_count(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2, price="99.5", currency="USD", quantity=3)
        await add_subscription(session, world, "C3", date(2026, 2, 10), 2, reseller="R2", currency="JPY", price="1000")
        await session.execute(update(Product).values(price_amount=Decimal("999.99")))  # the catalog moves on
    _data, manifest = await produce(sessions, renewals(date(2026, 3, 1), date(2026, 4, 1)))
    assert manifest.row_count == 3
    assert manifest.totals == [
        {"currency": "EUR", "rows": 1, "net_amount": "240.00"},
        {"currency": "JPY", "rows": 1, "net_amount": "2000"},
        {"currency": "USD", "rows": 1, "net_amount": "298.50"},
    ]


async def test_a_revocation_before_the_period_ends_is_never_billed(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        subscription = await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
        await _revoke(session, subscription, utc(2026, 3, 20))
    assert await rows_of(sessions, renewals(date(2026, 3, 1), date(2026, 4, 1))) == []
    assert await rows_of(sessions, renewals(date(2026, 4, 1), date(2026, 5, 1))) == []


async def _revoke(session: AsyncSession, subscription_id: uuid.UUID, when: object) -> None:
    await session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(status=SubscriptionStatus.revoked, revoked_at=when, ended_at=when)
    )


async def test_a_reversal_row_is_written_in_the_period_of_the_revocation_and_never_twice(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        yearly = await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
        # Term 2 runs through 2026-03-31; make it a long one so the revocation falls inside the term, a month later.
        await session.execute(
            update(SubscriptionTerm)
            .where(SubscriptionTerm.subscription_id == yearly, SubscriptionTerm.term_no == 2)
            .values(ends_at=at(date(2027, 3, 1)), valid_through=date(2027, 2, 28))
        )
        await rewrite_lines(session)
    march = renewal_month("2026-03", ZONE)
    billed = await record_report(sessions, march, "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert billed.row_count == 1
    async with sessions() as session, session.begin():
        await _revoke(session, yearly, utc(2026, 4, 15))
    april = renewal_month("2026-04", ZONE)
    [reversal] = await rows_of(sessions, ReportRequest(april, Scope(), "csv"))
    assert reversal["row_id"] == f"REV-{yearly}-2"
    assert (reversal["row_type"], reversal["quantity"], reversal["net_amount"]) == ("reversal", "-2", "-240.00")
    recorded = await record_report(sessions, april, "csv", tmp_path, CONFIG_REPORTS, NOW)
    again = await record_report(sessions, april, "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert recorded.created
    assert not again.created
    assert again.report_id == recorded.report_id
    assert recorded.row_count == 1
    assert recorded.totals == [{"currency": "EUR", "rows": 1, "net_amount": "-240.00"}]
    # The March file, written again from its record, still bills the renewal: what was billed stays billed.
    march_file = (tmp_path / billed.file).read_bytes()
    (tmp_path / billed.file).unlink()
    rewritten = await record_report(sessions, march, "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert (tmp_path / billed.file).read_bytes() == march_file
    assert rewritten.sha256 == billed.sha256
    may = renewal_month("2026-05", ZONE)
    await record_report(sessions, may, "csv", tmp_path, CONFIG_REPORTS, NOW)
    async with sessions() as session:
        marks = (await session.execute(select(ReportedRenewal.row_kind))).scalars().all()
        reports = (await session.execute(select(Report.period))).scalars().all()
    assert sorted(marks) == ["renewal", "reversal"]
    assert sorted(reports) == ["2026-03", "2026-04", "2026-05"]
    manifest = json.loads((tmp_path / (recorded.file + ".manifest.json")).read_text())
    assert manifest["sha256"] == recorded.sha256
    assert manifest["row_count"] == 1


async def test_a_renewal_written_after_its_period_was_recorded_is_billed_once_by_the_next_recorded_run(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        on_time = await add_subscription(session, world, "C1", date(2026, 2, 1), 2)  # renewed on 1 March
    march = renewal_month("2026-03", ZONE)
    billed_march = await record_report(sessions, march, "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert billed_march.row_count == 1
    march_file = (tmp_path / billed_march.file).read_bytes()
    # Renewed on 28 March, but its worker wrote the renewal only after the March run: it missed that run.
    async with sessions() as session, session.begin():
        late = await add_subscription(session, world, "C3", date(2026, 2, 28), 2, reseller="R2")
    april = renewal_month("2026-04", ZONE)
    preview = await rows_of(sessions, ReportRequest(april, Scope(), "csv"))
    assert [row["row_id"] for row in preview] == [f"REN-{late}-2"]  # the on-time one is not billed twice
    assert (preview[0]["first_day"], preview[0]["reseller_id"]) == ("2026-03-28", str(world.orgs["R2"]))
    billed_april = await record_report(sessions, april, "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert billed_april.row_count == 1
    assert billed_april.totals == [{"currency": "EUR", "rows": 1, "net_amount": "240.00"}]
    may = await record_report(sessions, renewal_month("2026-05", ZONE), "csv", tmp_path, CONFIG_REPORTS, NOW)
    assert may.row_count == 0
    # March written again from its record is the file it was; April's rows stay April's.
    (tmp_path / billed_march.file).unlink()
    (tmp_path / billed_april.file).unlink()
    assert (await record_report(sessions, march, "csv", tmp_path, CONFIG_REPORTS, NOW)).sha256 == billed_march.sha256
    assert (tmp_path / billed_march.file).read_bytes() == march_file
    assert (await record_report(sessions, april, "csv", tmp_path, CONFIG_REPORTS, NOW)).sha256 == billed_april.sha256
    async with sessions() as session:
        marks = (await session.execute(select(ReportedRenewal.report_id, ReportedRenewal.row_kind))).all()
    assert sorted((str(report), kind) for report, kind in marks) == sorted(
        [(str(billed_march.report_id), "renewal"), (str(billed_april.report_id), "renewal")]
    )
    assert on_time != late


@pytest.mark.usefixtures("world")
async def test_an_open_period_is_not_recorded(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="has not ended"):
        await record_report(sessions, renewal_month("2026-03", ZONE), "csv", tmp_path, CONFIG_REPORTS, utc(2026, 3, 5))


# --- active subscriptions ------------------------------------------------------------------------------------------


async def test_active_on_day_d_at_local_midnight(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    on = date(2026, 3, 15)
    async with sessions() as session, session.begin():
        running = await add_subscription(session, world, "C1", date(2026, 1, 20), 2)  # term 2 runs 02-20..03-19
        starts_on_d = await add_subscription(session, world, "C1", on, 1)
        starts_after = await add_subscription(session, world, "C1", on + timedelta(days=1), 1)
        revoked_on_d = await add_subscription(session, world, "C3", date(2026, 3, 1), 1, reseller="R2")
        await _revoke(session, revoked_on_d, at(on) + timedelta(hours=9))
        revoked_before = await add_subscription(session, world, "C3", date(2026, 3, 1), 1, reseller="R2")
        await _revoke(session, revoked_before, at(on) - timedelta(seconds=1))
        non_renewing = await add_subscription(
            session, world, "C1", date(2026, 3, 1), 1, status=SubscriptionStatus.non_renewing
        )
        await add_subscription(session, world, "C1", date(2026, 3, 1), 1, status=SubscriptionStatus.pending)
        ended = await add_subscription(session, world, "C1", date(2026, 1, 1), 2)  # through 2026-02-28
        direct = await add_subscription(session, world, "D", date(2026, 3, 1), 1, reseller=None, currency="USD")
    rows = await rows_of(sessions, active(on))
    found = {row["subscription_id"] for row in rows}
    assert found == {str(s) for s in (running, starts_on_d, revoked_on_d, non_renewing, direct)}
    assert str(starts_after) not in found
    assert str(revoked_before) not in found
    assert str(ended) not in found
    r1, r2 = str(world.orgs["R1"]), str(world.orgs["R2"])
    assert [row["reseller_id"] for row in rows] == [*sorted([r1, r1, r1, r2]), ""]
    assert rows[-1]["row_id"] == f"ACT-direct-2026-03-{direct}"
    assert rows[0]["row_id"].startswith(f"ACT-{rows[0]['reseller_id']}-2026-03-")
    own = await rows_of(sessions, active(on, world.orgs["R2"]))
    assert [row["subscription_id"] for row in own] == [str(revoked_on_d)]
    data, _ = await produce(sessions, ReportRequest(active_day(on, ZONE), Scope(), "json"))
    per_reseller = json.loads(data)["totals_per_reseller"]
    assert {"reseller_id": r1, "currency": "EUR", "net_amount": "720.00"} in per_reseller


def test_day_d_past_the_months_end_is_its_last_day() -> None:
    assert parse_day("2027-02-31") == date(2027, 2, 28)
    assert parse_day("2028-02-30") == date(2028, 2, 29)
    assert parse_day("2026-04-31") == date(2026, 4, 30)
    for bad in ("2026-13-01", "2026-02-32", "26-02-01", "2026-02-00"):
        with pytest.raises(ValueError, match="date"):
            parse_day(bad)
    # A schedule on day 31 runs on the last day of February, and not on the 28th of a leap February.
    assert scheduled_period(ReportKind.active_subscriptions, date(2027, 2, 28), 31, ZONE) is not None
    assert scheduled_period(ReportKind.active_subscriptions, date(2028, 2, 28), 31, ZONE) is None
    period = scheduled_period(ReportKind.renewals, date(2027, 3, 3), 3, ZONE)
    assert period is not None
    assert period.key == "2027-02"


async def test_a_reseller_change_mid_term_counts_from_its_instant(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        moved = await add_subscription(session, world, "C1", date(2026, 1, 1), 3)  # term 3: March
        await change_reseller(session, moved, world.orgs["R2"], at(date(2026, 3, 10)))
    before = await rows_of(sessions, active(date(2026, 3, 10) - timedelta(days=1)))
    after = await rows_of(sessions, active(date(2026, 3, 10)))
    assert [row["reseller_id"] for row in before] == [str(world.orgs["R1"])]
    assert [row["reseller_id"] for row in after] == [str(world.orgs["R2"])]
    # The March renewal started with R1 selling it: R1 bills it.
    [renewal] = await rows_of(sessions, renewals(date(2026, 3, 1), date(2026, 4, 1)))
    assert renewal["reseller_id"] == str(world.orgs["R1"])
    assert await rows_of(sessions, ReportRequest(renewal_month("2026-03", ZONE), Scope(world.orgs["R2"]), "csv")) == []


# --- formats -----------------------------------------------------------------------------------------------------


async def test_csv_opens_with_the_csv_module_defuses_formulas_and_is_byte_identical(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        await add_subscription(session, world, "C3", date(2026, 2, 1), 2, reseller="R2", external_ref="@SUM(A1)")
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2, external_ref='+49\r\n"quoted"')
    request = renewals(date(2026, 3, 1), date(2026, 4, 1))
    first, manifest = await produce(sessions, request)
    second, _ = await produce(sessions, request)
    assert first == second
    assert manifest.sha256 == hashlib.sha256(first).hexdigest()
    assert manifest.size == len(first)
    records = list(csv.reader(io.StringIO(first.decode("utf-8"), newline="")))
    header, *body = records
    assert header[:3] == ["row_id", "row_type", "reseller_id"]
    assert len(body) == 2
    cells = [cell for record in body for cell in record]
    assert "'@SUM(A1)" in cells
    assert '\'+49\r\n"quoted"' in cells
    assert "'" + CMD in cells
    assert CMD not in cells
    assert {undefuse(cell) for cell in cells} >= {"@SUM(A1)", '+49\r\n"quoted"', "240.00", CMD}
    # Only CSV defuses: JSON carries the text as it is.
    as_json, _ = await produce(sessions, ReportRequest(request.period, request.scope, "json"))
    assert CMD in {row["customer_name"] for row in json.loads(as_json)["rows"]}
    assert first.endswith(b"\r\n")
    assert b"\r\n" in first


async def test_html_is_escaped_and_every_format_streams_the_same_rows(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld
) -> None:
    async with sessions() as session, session.begin():
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2, external_ref="<script>x</script>")
    period = renewal_month("2026-03", ZONE)
    html, manifest = await produce(sessions, ReportRequest(period, Scope(), "html"))
    assert b"&lt;script&gt;" in html
    assert b"<script>" not in html
    assert b"240.00" in html
    sap, sap_manifest = await produce(sessions, ReportRequest(period, Scope(), "sap_billing_upload"))
    assert sap_manifest.row_count == manifest.row_count == 1
    assert sap.decode().splitlines()[0].startswith("DOC_TYPE;")


async def test_a_template_failing_only_on_real_rows_stops_with_its_message(
    sessions: async_sessionmaker[AsyncSession], world: ReportWorld, tmp_path: Path
) -> None:
    from tessera.reports.templates import ReportTemplateError

    async with sessions() as session, session.begin():
        await add_subscription(session, world, "C1", date(2026, 2, 1), 2, external_ref="PO-7")
    (tmp_path / "picky.txt.j2").write_text(
        "{% for row in rows %}{% if row.external_ref %}{{ nope }}{% endif %}{% endfor %}"
    )
    prepared = await prepare_format(tmp_path, "picky")  # the sample rows have no external_ref: it passes the check
    request = ReportRequest(renewal_month("2026-03", ZONE), Scope(), "picky")
    with pytest.raises(ReportTemplateError, match="'nope' is undefined"):
        async for _chunk in stream_report(sessions, request, prepared, new_manifest(request, prepared)):
            pass
