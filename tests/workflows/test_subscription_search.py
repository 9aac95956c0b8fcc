"""Operators' filters on the dev server: subscriptions found by customer, product, reseller, status and expiry.

Real workflows run by a real worker against the dev server's visibility store (eventually consistent: every
query is polled, bounded). One subscription renews during the test, in a time zone whose midnight is seconds away,
so the filters are seen to follow the subscription into its next run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tessera.models import Organization, Subscription, SubscriptionStatus
from tessera.settings import Settings
from tessera.subscriptions.plans import plan_of
from tests.conftest import RightsWorld
from tests.midnight_zone import midnight_zone
from tests.workflows.subscription_harness import (
    add_subscription_product,
    buy_subscription,
    eventually,
    reload,
    start,
    terminate_started,
    worker_on,
)
from workflows.subscription_models import ProcessState, SubscriptionState
from workflows.subscription_ops import start_revocation_workflow

POLLS = 100
"""Visibility queries are retried this often, 0.1 s apart, before the last answer is asserted."""


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Visibility is the subject here, not the database: SQLite only."""
    return sqlite_url


@pytest.fixture(autouse=True)
async def _terminate_after() -> AsyncIterator[None]:
    yield
    await terminate_started()


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _found(client: Client, query: str, expected: set[str]) -> set[str]:
    """The workflow ids `query` lists, once they are `expected` (or the last answer after the bounded polling)."""
    found: set[str] = set()
    for _ in range(POLLS):
        found = {execution.id async for execution in client.list_workflows(query)}
        if found == expected:
            break
        await asyncio.sleep(0.1)
    return found


async def test_operators_find_subscriptions_by_customer_product_reseller_status_and_expiry(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    client, w = dev_env.client, rights_world
    suffix = uuid.uuid4().hex[:6].upper()  # the dev server outlives this test: product codes of its own
    year, month, daily = f"SUB-Y{suffix}", f"SUB-M{suffix}", f"SUB-D{suffix}"
    yearly = await add_subscription_product(sessions, w, code=year)
    monthly = await add_subscription_product(sessions, w, code=month, term="P1M", notice_period="P7D")
    on_activation = await add_subscription_product(sessions, w, code=f"SUB-A{suffix}", anchor="first_activation")
    day_long = await add_subscription_product(sessions, w, code=daily, term="P1D", notice_period="P0D")
    today = datetime.now(UTC).date()
    bought = {
        # C1 (reseller R1): a monthly one, a take-over in its third year ending in 20 days, one ending in 200 days
        "month": await buy_subscription(sessions, w, monthly, organization="C1"),
        "soon": await buy_subscription(
            sessions, w, yearly, organization="C1", subscription_start=_years_before(today, 2, days=20)
        ),
        "later": await buy_subscription(
            sessions, w, yearly, organization="C1", subscription_start=_years_before(today, 1, days=200)
        ),
        # C2 (reseller R1): a new yearly one, and one that waits for its first activation
        "sibling": await buy_subscription(sessions, w, yearly, organization="C2"),
        "pending": await buy_subscription(sessions, w, on_activation, organization="C2", quantity=1),
        # C3 (reseller R2): a take-over ending in 10 days, revoked below
        "revoked": await buy_subscription(
            sessions, w, yearly, organization="C3", subscription_start=_years_before(today, 1, days=10)
        ),
    }
    assert bought["soon"].imported_terms == 1
    assert bought["pending"].status == SubscriptionStatus.pending
    queue = f"subscription-search-{uuid.uuid4().hex[:8]}"
    renews_at = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    with midnight_zone(renews_at) as zone:
        async with worker_on(client, settings, sessions, queue) as queued:
            # C3's daily subscription lives where midnight is seconds away: it renews while the test watches.
            await _set_timezone(sessions, w.orgs["C3"], zone)
            bought["renewing"] = await buy_subscription(sessions, w, day_long, organization="C3", quantity=1)
            handles = {name: await start(client, queued, sessions, sub) for name, sub in bought.items()}
            async with sessions() as session:
                await start_revocation_workflow(
                    client,
                    queued,
                    session,
                    target="subscription",
                    target_id=bought["revoked"].id,
                    requester_user_id=w.users["vendor_admin"],
                    reason="contract ended",
                )
            revocation = client.get_workflow_handle(f"revocation-{bought['revoked'].id}", result_type=ProcessState)
            assert (await revocation.result()).status == "done"
            assert (await handles["revoked"].result()).status == "revoked"
            renewing = bought["renewing"].id
            await eventually(lambda: _term_no_is(sessions, renewing, 2), "the daily renewal", attempts=600)

            wid = {name: f"subscription-{sub.id}" for name, sub in bought.items()}
            ends = {name: plan_of(sub).term(sub.term_no).ends_at for name, sub in bought.items() if sub.term_no}
            assert ends["soon"] - datetime.now(UTC) < timedelta(days=21)
            cutoff = _instant(datetime.now(UTC) + timedelta(days=60))
            ours = f"TesseraCustomer IN ('{w.orgs['C1']}', '{w.orgs['C2']}', '{w.orgs['C3']}')"
            base = f'WorkflowType = "SubscriptionWorkflow" AND {ours}'
            c1, r1, r2 = w.orgs["C1"], w.orgs["R1"], w.orgs["R2"]
            queries = {
                # an operator's everyday question: C1's active subscriptions expiring before a date
                f'{base} AND TesseraStatus = "active" AND TesseraCustomer = "{c1}" AND TesseraExpiry < "{cutoff}"': {
                    wid["month"],
                    wid["soon"],
                },
                f'{base} AND TesseraCustomer = "{c1}" AND TesseraExpiry >= "{cutoff}"': {wid["later"]},
                f'{base} AND TesseraProduct = "{year}" AND TesseraExpiry < "{cutoff}"': {wid["soon"], wid["revoked"]},
                f'{base} AND TesseraProduct = "{month}"': {wid["month"]},
                f'{base} AND TesseraStatus = "revoked"': {wid["revoked"]},
                f'{base} AND TesseraStatus = "pending" AND TesseraReseller = "{r1}"': {wid["pending"]},
                f'{base} AND TesseraReseller = "{r1}"': {
                    wid[name] for name in ("month", "soon", "later", "sibling", "pending")
                },
                f'{base} AND TesseraReseller = "{r2}" AND TesseraStatus = "active"': {wid["renewing"]},
                # the renewed subscription's current run carries its new term's end
                f'{base} AND ExecutionStatus = "Running" AND TesseraExpiry > "{_instant(renews_at)}"'
                f' AND TesseraExpiry < "{_instant(renews_at + timedelta(days=2))}"': {wid["renewing"]},
                f'{base} AND ExecutionStatus = "Running" AND TesseraReseller = "{r2}"': {wid["renewing"]},
            }
            for query, expected in queries.items():
                assert await _found(client, query, expected) == expected, query
            # asked once the new run is listed: the renewal is recorded a moment before the run continues as new
            renewed: SubscriptionState = await handles["renewing"].query("state", result_type=SubscriptionState)
    assert renewed.term is not None
    assert renewed.term.number == 2
    assert renewed.term.ends_at == renews_at + timedelta(days=1)

    await _check_descriptions(client, w, bought, ends, (year, daily), renews_at)


async def _check_descriptions(
    client: Client,
    w: RightsWorld,
    bought: dict[str, Subscription],
    ends: dict[str, datetime],
    codes: tuple[str, str],
    renews_at: datetime,
) -> None:
    """Each run describes itself in words, without names or addresses; its attributes are its current state."""
    year, daily = codes
    soon = await client.get_workflow_handle(f"subscription-{bought['soon'].id}").describe()
    attributes = {key.name: value for key, value in soon.typed_search_attributes if key.name.startswith("Tessera")}
    assert attributes == {
        "TesseraCustomer": str(w.orgs["C1"]),
        "TesseraProduct": year,
        "TesseraStatus": "active",
        "TesseraExpiry": ends["soon"],
        "TesseraReseller": str(w.orgs["R1"]),
    }
    summary = f"subscription of 2 x {year} for organization {w.orgs['C1']}"
    assert await soon.memo_value("summary") == summary
    assert await soon.static_summary() == summary

    renewing = bought["renewing"]
    first_run = [execution async for execution in client.list_workflows(f'WorkflowId = "subscription-{renewing.id}"')]
    assert {execution.status for execution in first_run} == {
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.CONTINUED_AS_NEW,
    }
    handle_run_id = next(e.run_id for e in first_run if e.status == WorkflowExecutionStatus.CONTINUED_AS_NEW)
    current = await client.get_workflow_handle(f"subscription-{renewing.id}").describe()
    assert current.status == WorkflowExecutionStatus.RUNNING
    assert current.run_id != handle_run_id  # continued as new at the renewal
    attributes = {key.name: value for key, value in current.typed_search_attributes}
    assert attributes["TesseraExpiry"] == renews_at + timedelta(days=1)
    assert attributes["TesseraStatus"] == "active"
    assert attributes["TesseraCustomer"] == str(w.orgs["C3"])
    assert attributes["TesseraReseller"] == str(w.orgs["R2"])
    described = await current.memo_value("summary")
    # The memo carries the summary into every run; the static summary stays on the first run only (the SDK's
    # continue-as-new takes none), so operators read the memo column on a renewed subscription.
    assert described == f"subscription of 1 x {daily} for organization {w.orgs['C3']}"
    people = [*w.users, "@", "example.com", "ProCAD"]
    for text in (summary, described):
        assert not [word for word in people if word in text], text
        assert not any(org in text.split() for org in ("C1", "C2", "C3", "R1", "R2")), text


def _years_before(day: date, years: int, *, days: int) -> date:
    """`years` years before `day` (28 February for a 29th), then `days` days later: a take-over's first day."""
    try:
        shifted = day.replace(year=day.year - years)
    except ValueError:
        shifted = day.replace(year=day.year - years, day=28)
    return shifted + timedelta(days=days)


async def _set_timezone(sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, zone: str) -> None:
    async with sessions() as session:
        organization = await session.get(Organization, organization_id)
        assert organization is not None
        organization.timezone = zone
        await session.commit()


async def _term_no_is(sessions: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, term_no: int) -> bool:
    return (await reload(sessions, subscription_id)).term_no >= term_no
