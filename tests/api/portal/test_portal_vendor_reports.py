"""Report pages: produced on demand byte for byte as the API produces them, recorded runs downloaded, reach, errors."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Organization, User, utcnow
from tessera.reports.periods import renewal_month
from tessera.reports.recording import record_report
from tessera.settings import Settings
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer
from tests.report_world import ZONE, ReportWorld, add_subscription

Sessions = async_sessionmaker[AsyncSession]
VENDOR = "admin@vendor.example"
RESELLER = "reseller.admin@example.com"
CUSTOMER = "customer.admin@example.com"
CONFIG_REPORTS = Path(__file__).resolve().parents[3] / "config" / "reports"
MARCH = {"kind": "renewals", "from": "2026-03-01", "to": "2026-04-01"}


@pytest.fixture
async def sold(sessions: Sessions, rights_world: RightsWorld) -> dict[str, uuid.UUID]:
    """A renewal in March 2026 sold by R1 (to C1) and one by R2 (to C3); the vendor keeps Berlin's days."""
    world = ReportWorld(orgs=rights_world.orgs, product_id=rights_world.product_id)
    for email in (VENDOR, RESELLER, CUSTOMER):
        await give_password(sessions, email)
    async with sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == world.orgs["V"]).values(timezone=ZONE))
        return {
            "R1": await add_subscription(session, world, "C1", date(2026, 2, 1), 2, reseller="R1"),
            "R2": await add_subscription(session, world, "C3", date(2026, 2, 1), 2, reseller="R2"),
        }


async def test_a_report_produced_here_is_the_apis_byte_for_byte(
    api: AsyncClient, rights_world: RightsWorld, sold: dict[str, uuid.UUID]
) -> None:
    await sign_in_portal(api, VENDOR)
    page = await api.get("/reports")
    assert page.status_code == 200
    assert "<h1>Reports</h1>" in page.text
    for label in ('for="f-kind">Report', 'for="f-from">From', 'for="f-to">To', 'for="f-on">On'):
        assert label in page.text
    for fields, path, query in [
        ({**MARCH, "format": "csv"}, "renewals", {"from": "2026-03-01", "to": "2026-04-01", "format": "csv"}),
        ({"kind": "active-subscriptions", "on": "2026-02-31", "format": "json"}, "active-subscriptions",
         {"on": "2026-02-31", "format": "json"}),
        ({**MARCH, "format": "sap_billing_upload", "reseller": str(rights_world.orgs["R2"])}, "renewals",
         {"from": "2026-03-01", "to": "2026-04-01", "format": "sap_billing_upload",
          "reseller": str(rights_world.orgs["R2"])}),
    ]:  # fmt: skip
        produced = await submit(api, "/reports", **fields)
        assert produced.status_code == 200, produced.text
        assert produced.headers["content-disposition"].startswith("attachment")
        from_api = await api.get(
            f"/api/v1/reports/{path}", params=query, headers=bearer(rights_world.keys["vendor_admin"])
        )
        assert from_api.status_code == 200
        assert produced.content == from_api.content
        assert produced.headers["content-type"] == from_api.headers["content-type"]
        assert produced.headers["content-disposition"] == from_api.headers["content-disposition"]
    assert str(sold["R1"]) in (await submit(api, "/reports", **MARCH, format="csv")).text


async def test_a_resellers_admin_gets_their_own_rows_and_a_customers_admin_nothing(
    api: AsyncClient, rights_world: RightsWorld, sold: dict[str, uuid.UUID]
) -> None:
    await sign_in_portal(api, RESELLER)
    own = await submit(api, "/reports", **MARCH, format="csv")
    assert own.status_code == 200
    assert str(sold["R1"]) in own.text
    assert str(sold["R2"]) not in own.text
    from_api = await api.get(
        "/api/v1/reports/renewals",
        params={"from": "2026-03-01", "to": "2026-04-01"},
        headers=bearer(rights_world.keys["reseller_admin"]),
    )
    assert own.content == from_api.content
    # Naming another reseller is the API's 404.
    foreign = await submit(api, "/reports", **MARCH, format="csv", reseller=str(rights_world.orgs["R2"]))
    assert foreign.status_code == 404
    async with browser(api) as customer:
        await sign_in_portal(customer, CUSTOMER)
        page = await customer.get("/reports")
        assert "Reports are for the administrators of the vendor and of its resellers." in page.text
        assert "Produce report" not in page.text
        refused = await customer.post("/reports", data={"csrf_token": csrf_of(page.text), **MARCH})
        assert refused.status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"from": "2026-04-02", "to": "2026-04-01"}, "to", "must be after from"),
        ({"from": "2026-02-30"}, "from", "give a date as YYYY-MM-DD"),
        ({"from": "2020-01-01"}, "to", "at most 400 days after from"),
        ({"format": "xlsx"}, "format", "choose one of: csv, json, html"),
        ({"format": "../../etc/passwd"}, "format", "choose one of"),
        ({"kind": "active-subscriptions", "on": "2026-02-32"}, "on", "no such date"),
        ({"kind": "active-subscriptions", "on": ""}, "on", "give a date as YYYY-MM-DD"),
        ({"kind": "payroll"}, "kind", "choose a report"),
        ({"reseller": "R1"}, "reseller", "choose a reseller"),
        ({"from": "x" * 65}, "from", "at most 64 characters"),
    ],
)
async def test_bad_input_is_shown_next_to_its_field(
    api: AsyncClient, sold: dict[str, uuid.UUID], fields: dict[str, str], field: str, message: str
) -> None:
    del sold
    await sign_in_portal(api, VENDOR)
    answer = await submit(api, "/reports", **{**MARCH, "format": "csv", **fields})
    assert answer.status_code == 422, answer.text
    shown = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', answer.text)
    assert shown is not None, answer.text
    assert message in shown.group(1)


async def test_recorded_reports_are_listed_and_downloaded_as_recorded(
    api: AsyncClient, sold: dict[str, uuid.UUID], sessions: Sessions, settings: Settings
) -> None:
    del sold
    march = await record_report(
        sessions, renewal_month("2026-03", ZONE), "csv", settings.resolved_reports_dir, CONFIG_REPORTS, utcnow()
    )
    await sign_in_portal(api, VENDOR)
    page = await api.get("/reports")
    assert f'data-id="{march.report_id}"' in page.text
    download = await api.get(f"/reports/{march.report_id}/download")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert hashlib.sha256(download.content).hexdigest() == march.sha256
    assert (await api.get(f"/reports/{uuid.uuid4()}/download")).status_code == 404
    async with browser(api) as reseller:
        await sign_in_portal(reseller, RESELLER)
        assert f'data-id="{march.report_id}"' not in (await reseller.get("/reports")).text
        assert (await reseller.get(f"/reports/{march.report_id}/download")).status_code == 404


async def test_producing_needs_the_forms_token_and_speaks_german(
    api: AsyncClient, sold: dict[str, uuid.UUID], sessions: Sessions
) -> None:
    del sold
    await sign_in_portal(api, VENDOR)
    forged = await api.post("/reports", data={**MARCH, "format": "csv"})
    assert forged.status_code == 403
    async with sessions() as session:
        await session.execute(update(User).where(User.email == VENDOR).values(locale="de"))
        await session.commit()
    page = await api.get("/reports")
    assert "<h1>Berichte</h1>" in page.text
    assert "Bericht erstellen" in page.text
    assert "Aufgezeichnete Berichte" in page.text
