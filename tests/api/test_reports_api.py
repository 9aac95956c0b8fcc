"""Billing reports through the API: who may read them, bad parameters, streamed formats, recorded runs."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import date
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Organization, utcnow
from tessera.reports.periods import renewal_month
from tessera.reports.recording import record_report
from tessera.settings import Settings
from tests.conftest import RightsWorld, bearer
from tests.report_world import ZONE, ReportWorld, add_subscription

REPORTS = "/api/v1/reports"
CONFIG_REPORTS = Path(__file__).resolve().parents[2] / "config" / "reports"


@pytest.fixture
async def sold(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> dict[str, uuid.UUID]:
    """A renewal in March 2026 sold by R1 (to C1) and one by R2 (to C3)."""
    world = ReportWorld(orgs=rights_world.orgs, product_id=rights_world.product_id)
    async with sessions() as session, session.begin():
        # The subscriptions' days are Berlin's, and so are the vendor's report periods.
        await session.execute(update(Organization).where(Organization.id == world.orgs["V"]).values(timezone=ZONE))
        return {
            "R1": await add_subscription(session, world, "C1", date(2026, 2, 1), 2, reseller="R1"),
            "R2": await add_subscription(session, world, "C3", date(2026, 2, 1), 2, reseller="R2"),
        }


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_vendor_admins_see_all_and_reseller_admins_their_own(
    api: AsyncClient, rights_world: RightsWorld, sold: dict[str, uuid.UUID]
) -> None:
    w = rights_world
    query = {"from": "2026-03-01", "to": "2026-04-01"}
    everything = await api.get(f"{REPORTS}/renewals", params=query, headers=bearer(w.keys["vendor_admin"]))
    assert everything.status_code == 200, everything.text
    assert everything.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in everything.headers["content-disposition"]
    assert {row["subscription_id"] for row in _rows(everything.text)} == {str(s) for s in sold.values()}
    own = await api.get(f"{REPORTS}/renewals", params=query, headers=bearer(w.keys["reseller_admin"]))
    assert own.status_code == 200, own.text
    assert [row["subscription_id"] for row in _rows(own.text)] == [str(sold["R1"])]
    active = await api.get(
        f"{REPORTS}/active-subscriptions", params={"on": "2026-03-15"}, headers=bearer(w.keys["reseller_admin"])
    )
    assert [row["subscription_id"] for row in _rows(active.text)] == [str(sold["R1"])]
    # Another reseller's id, a customer's administrator, a member: 404, like a report that does not exist.
    foreign = await api.get(
        f"{REPORTS}/renewals", params={**query, "reseller": str(w.orgs["R2"])}, headers=bearer(w.keys["reseller_admin"])
    )
    assert foreign.status_code == 404
    for who in ("customer_admin", "reseller_member", "vendor_staff", "customer_member"):
        for path, params in (("renewals", query), ("active-subscriptions", {"on": "2026-03-15"})):
            answer = await api.get(f"{REPORTS}/{path}", params=params, headers=bearer(w.keys[who]))
            assert answer.status_code == 404, (who, path, answer.text)
        listed = await api.get(REPORTS, headers=bearer(w.keys[who]))
        assert listed.status_code == 200, who
        assert listed.json()["items"] == [], who
    filtered = await api.get(
        f"{REPORTS}/renewals", params={**query, "reseller": str(w.orgs["R2"])}, headers=bearer(w.keys["vendor_admin"])
    )
    assert [row["subscription_id"] for row in _rows(filtered.text)] == [str(sold["R2"])]
    not_a_reseller = await api.get(
        f"{REPORTS}/renewals", params={**query, "reseller": str(w.orgs["C1"])}, headers=bearer(w.keys["vendor_admin"])
    )
    assert not_a_reseller.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("renewals", {"from": "2026-04-01", "to": "2026-04-01"}, "query.to"),
        ("renewals", {"from": "2026-04-02", "to": "2026-04-01"}, "query.to"),
        ("renewals", {"from": "2026-02-30", "to": "2026-04-01"}, "query.from"),
        ("renewals", {"from": "yesterday", "to": "2026-04-01"}, "query.from"),
        ("renewals", {"to": "2026-04-01"}, "query.from"),
        ("renewals", {"from": "2020-01-01", "to": "2026-04-01"}, "query.to"),
        ("renewals", {"from": "2026-03-01", "to": "2026-04-01", "format": "xlsx"}, "query.format"),
        ("renewals", {"from": "2026-03-01", "to": "2026-04-01", "reseller": "R1"}, "query.reseller"),
        ("renewals", {"from": "2026-03-01", "to": "2026-04-01", "colour": "red"}, "query.colour"),
        ("renewals", {"from": "0001-01-01", "to": "0001-01-02"}, "query.from"),
        ("renewals", {"from": "9999-12-30", "to": "9999-12-31"}, "query.from"),
        ("active-subscriptions", {"on": "0001-01-01"}, "query.on"),
        ("active-subscriptions", {"on": "9999-12-31"}, "query.on"),
        ("active-subscriptions", {"on": "2026-13-01"}, "query.on"),
        ("active-subscriptions", {"on": "2026-02-32"}, "query.on"),
        ("active-subscriptions", {"on": "march"}, "query.on"),
        ("active-subscriptions", {}, "query.on"),
        ("active-subscriptions", {"on": "2026-03-01", "format": "../../etc/passwd"}, "query.format"),
    ],
)
async def test_bad_parameters_are_named(
    api: AsyncClient, rights_world: RightsWorld, path: str, params: dict[str, str], field: str
) -> None:
    answer = await api.get(f"{REPORTS}/{path}", params=params, headers=bearer(rights_world.keys["vendor_admin"]))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in answer.json()["errors"]], answer.json()


async def test_formats_and_day_d_past_the_months_end(
    api: AsyncClient, rights_world: RightsWorld, sold: dict[str, uuid.UUID]
) -> None:
    headers = bearer(rights_world.keys["vendor_admin"])
    as_json = await api.get(
        f"{REPORTS}/active-subscriptions", params={"on": "2026-02-31", "format": "json"}, headers=headers
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    body = as_json.json()
    assert body["report"]["period"] == "2026-02-28"
    assert len(body["rows"]) == 2
    assert body["totals"] == [{"currency": "EUR", "rows": 2, "net_amount": "480.00"}]
    html = await api.get(
        f"{REPORTS}/active-subscriptions", params={"on": "2026-02-28", "format": "html"}, headers=headers
    )
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "Totals per currency" in html.text
    again = await api.get(
        f"{REPORTS}/active-subscriptions", params={"on": "2026-02-31", "format": "json"}, headers=headers
    )
    assert again.content == as_json.content
    sap = await api.get(
        f"{REPORTS}/renewals",
        params={"from": "2026-03-01", "to": "2026-04-01", "format": "sap_billing_upload"},
        headers=headers,
    )
    assert sap.status_code == 200, sap.text
    assert sap.text.startswith("DOC_TYPE;SALES_ORG;")
    assert {str(s) for s in sold.values()} <= {line.split(";")[-1].split("-", 1)[1].rsplit("-", 1)[0]
                                              for line in sap.text.splitlines()[1:]}  # fmt: skip


async def test_a_broken_template_is_a_problem_naming_its_line(
    api: AsyncClient, rights_world: RightsWorld, settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    (config / "reports").mkdir(parents=True)
    (config / "reports" / "broken.csv.j2").write_text("header\n{% for row in rows %}\n{{ row.row_id \n{% endfor %}\n")
    (config / "reports" / "unknown_name.csv.j2").write_text("{{ no_such_variable }}\n")
    settings.config_dir = config
    headers = bearer(rights_world.keys["vendor_admin"])
    for name, line in (("broken", 4), ("unknown_name", 1)):
        answer = await api.get(
            f"{REPORTS}/renewals", params={"from": "2026-03-01", "to": "2026-04-01", "format": name}, headers=headers
        )
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert problem["code"] == "invalid-report-template"
        assert f"{name}.csv.j2, line {line}" in problem["detail"], problem


async def test_recorded_reports_are_listed_and_downloaded_with_their_hash(
    api: AsyncClient,
    rights_world: RightsWorld,
    sold: dict[str, uuid.UUID],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    recorded = []
    for month in ("2026-03", "2026-04", "2026-05"):
        period = renewal_month(month, ZONE)
        recorded.append(
            await record_report(sessions, period, "csv", settings.resolved_reports_dir, CONFIG_REPORTS, utcnow())
        )
    headers = bearer(rights_world.keys["vendor_admin"])
    first = await api.get(REPORTS, params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    second = await api.get(REPORTS, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=headers)
    listed = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert sorted(listed) == sorted(str(r.report_id) for r in recorded)
    assert second.json()["next_cursor"] is None
    march = recorded[0]
    download = await api.get(f"{REPORTS}/{march.report_id}", headers=headers)
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == march.sha256 == download.headers["x-report-sha256"]
    assert {row["subscription_id"] for row in _rows(download.text)} == {str(s) for s in sold.values()}
    # Recorded runs cover the whole vendor: a reseller's administrators see none of them.
    own = await api.get(REPORTS, headers=bearer(rights_world.keys["reseller_admin"]))
    assert own.json()["items"] == []
    hidden = await api.get(f"{REPORTS}/{march.report_id}", headers=bearer(rights_world.keys["reseller_admin"]))
    assert hidden.status_code == 404
    missing = await api.get(f"{REPORTS}/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    bad_cursor = await api.get(REPORTS, params={"cursor": "nonsense"}, headers=headers)
    assert bad_cursor.status_code == 422
