"""Order activities called directly, as a worker runs them: large orders, resuming, expiry, allocation, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from tessera.apikeys import authenticate
from tessera.db import unit_of_work
from tessera.durations import parse_duration
from tessera.licenses.expiry import add_duration
from tessera.licenses.fulfilment import CHUNK
from tessera.models import Grant, License, Order, Product, Ticket
from tessera.processes.steps import AllocateTo
from tessera.rights.grants import withdraw_grant
from tessera.settings import Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.order_harness import place_order
from workflows.order_models import AllocateInput, ApplyInput, NotifyInput, OrderRef


def _activities(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> OrderActivities:
    return OrderActivities(sessions, TEST_SECRET, settings.config_dir / "templates", settings.portal_url)


async def _counts(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> tuple[int, int]:
    async with sessions() as session:
        licenses = await session.scalar(select(func.count()).select_from(License).where(License.order_id == order_id))
        tickets = await session.scalar(
            select(func.count()).select_from(Ticket).join(License).where(License.order_id == order_id)
        )
    return int(licenses or 0), int(tickets or 0)


async def _unlimited(sessions: async_sessionmaker[AsyncSession], world: RightsWorld, organization: str) -> None:
    async with sessions() as session:
        await session.execute(update(Grant).where(Grant.id == world.grants[organization]).values(quota=None))
        await session.commit()


async def test_ten_thousand_licenses_complete_in_chunks_with_progress(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await _unlimited(sessions, rights_world, "C3")
    order = await place_order(sessions, rights_world, organization="C3", requester="foreign_admin", quantity=10_000)
    environment = ActivityEnvironment()
    beats: list[int] = []
    environment.on_heartbeat = lambda *details: beats.append(int(details[0]))
    created = await environment.run(_activities(settings, sessions).create_licenses, OrderRef(order_id=str(order.id)))
    assert created.created == 10_000
    assert await _counts(sessions, order.id) == (10_000, 10_000)
    # One heartbeat per committed chunk, each saying how many lines are done.
    assert beats == list(range(CHUNK, 10_001, CHUNK))
    async with sessions() as session:
        lines = (await session.scalars(select(License.line_no).where(License.order_id == order.id))).all()
    assert sorted(lines) == list(range(1, 10_001))


async def test_a_retry_resumes_after_the_lines_its_heartbeat_reported(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await _unlimited(sessions, rights_world, "C3")
    order = await place_order(sessions, rights_world, organization="C3", requester="foreign_admin", quantity=1_200)
    activities = _activities(settings, sessions)
    first = ActivityEnvironment()
    seen: list[int] = []

    def crash_after_first_chunk(*details: object) -> None:
        seen.append(int(str(details[0])))
        raise RuntimeError("worker lost")

    first.on_heartbeat = crash_after_first_chunk
    with pytest.raises(RuntimeError):
        await first.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    assert seen == [CHUNK]
    assert await _counts(sessions, order.id) == (CHUNK, CHUNK)  # the first chunk was committed
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=[CHUNK])
    beats: list[int] = []
    retry.on_heartbeat = lambda *details: beats.append(int(details[0]))
    created = await retry.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    assert beats == [2 * CHUNK, 1_200]  # it did not start again from line 1
    assert created.created == 1_200
    assert await _counts(sessions, order.id) == (1_200, 1_200)


async def _product(sessions: async_sessionmaker[AsyncSession], world: RightsWorld, **columns: object) -> None:
    async with sessions() as session:
        await session.execute(update(Product).where(Product.id == world.product_id).values(**columns))
        await session.commit()


async def _expiry(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> set[datetime | None]:
    async with sessions() as session:
        return set((await session.scalars(select(License.expires_at).where(License.order_id == order_id))).all())


async def test_every_product_kind_gets_its_technical_expiry(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities, environment = _activities(settings, sessions), ActivityEnvironment()
    before = datetime.now(UTC)

    perpetual = await place_order(sessions, rights_world, quantity=1)
    await environment.run(activities.create_licenses, OrderRef(order_id=str(perpetual.id)))
    assert await _expiry(sessions, perpetual.id) == {None}

    # A trial's length comes from the field the catalog names, whatever it is called.
    await _product(sessions, rights_world, kind="trial", expiry={"trial_days_field": "test_length"})
    trial = await place_order(sessions, rights_world, quantity=2)
    async with sessions() as session:
        await session.execute(update(Order).where(Order.id == trial.id).values(fields={"test_length": 60}))
        await session.commit()
    await environment.run(activities.create_licenses, OrderRef(order_id=str(trial.id)))
    (trial_end,) = await _expiry(sessions, trial.id)
    assert trial_end is not None
    assert before + timedelta(days=60) <= trial_end <= datetime.now(UTC) + timedelta(days=60)

    await _product(sessions, rights_world, kind="time_limited", expiry={"duration": "P1Y"})
    limited = await place_order(sessions, rights_world, quantity=1)
    await environment.run(activities.create_licenses, OrderRef(order_id=str(limited.id)))
    (limited_end,) = await _expiry(sessions, limited.id)
    assert limited_end is not None
    assert (
        add_duration(before, parse_duration("P1Y"))
        <= limited_end
        <= add_duration(datetime.now(UTC), parse_duration("P1Y"))
    )


async def test_a_trial_without_a_length_fails_visibly_instead_of_retrying(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await _product(sessions, rights_world, kind="trial", expiry=None)
    order = await place_order(sessions, rights_world, quantity=1)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            _activities(settings, sessions).create_licenses, OrderRef(order_id=str(order.id))
        )
    assert failed.value.non_retryable
    assert failed.value.type == "license-expiry-unknown"
    assert await _counts(sessions, order.id) == (0, 0)


async def test_missing_rows_and_broken_templates_are_not_retried(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities, environment = _activities(settings, sessions), ActivityEnvironment()
    with pytest.raises(ApplicationError) as missing:
        await environment.run(activities.create_licenses, OrderRef(order_id=str(uuid.uuid4())))
    assert (missing.value.non_retryable, missing.value.type) == (True, "not-found")
    order = await place_order(sessions, rights_world, quantity=1)
    notify = NotifyInput(order_id=str(order.id), key="tell:1", template="gone.txt.j2", to=["requester"])
    with pytest.raises(ApplicationError) as gone:
        await environment.run(activities.apply, ApplyInput(order_id=str(order.id), actions=[notify]))
    assert (gone.value.non_retryable, gone.value.type) == (True, "step-failed")
    assert "gone.txt.j2" in str(gone.value)


@pytest.mark.parametrize(("requester", "holder"), [("vendor_admin", None), ("customer_admin", "customer_admin")])
async def test_a_requester_outside_the_organization_allocates_to_it(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    requester: str,
    holder: str | None,
) -> None:
    order = await place_order(sessions, rights_world, requester=requester, quantity=2)
    activities, environment = _activities(settings, sessions), ActivityEnvironment()
    await environment.run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    allocate = AllocateInput(order_id=str(order.id), to=AllocateTo.as_ordered)
    await environment.run(activities.apply, ApplyInput(order_id=str(order.id), actions=[allocate]))
    async with sessions() as session:
        tickets = (await session.scalars(select(Ticket).join(License).where(License.order_id == order.id))).all()
    expected = rights_world.users[holder] if holder else None
    assert {(t.allocated_user_id, t.organization_id) for t in tickets} == {(expected, rights_world.orgs["C1"])}


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        ("2027-01-31T10:00:00+00:00", "P1M", "2027-02-28T10:00:00+00:00"),
        ("2028-02-29T00:00:00+00:00", "P1Y", "2029-02-28T00:00:00+00:00"),
        ("2027-11-30T00:00:00+00:00", "P3M", "2028-02-29T00:00:00+00:00"),
        ("2027-01-01T00:00:00+00:00", "P1Y2M10DT2H", "2028-03-11T02:00:00+00:00"),
    ],
)
def test_calendar_durations_clamp_to_the_end_of_the_month(start: str, duration: str, end: str) -> None:
    assert add_duration(datetime.fromisoformat(start), parse_duration(duration)) == datetime.fromisoformat(end)


@pytest.mark.parametrize("change", ["withdraw the reseller's grant above", "take create away"])
async def test_an_order_is_not_fulfilled_under_a_grant_withdrawn_while_it_waited(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld, change: str
) -> None:
    order = await place_order(sessions, rights_world, quantity=2)  # on C1's grant, delegated from R1's
    async with sessions() as session:  # ...and while it waits for approval, the grant goes
        if change.startswith("withdraw"):
            values: dict[str, object] = {"withdrawn_at": datetime.now(UTC)}
            await session.execute(update(Grant).where(Grant.id == rights_world.grants["R1"]).values(**values))
        else:
            await session.execute(
                update(Grant).where(Grant.id == rights_world.grants["C1"]).values(permissions=["allocate"])
            )
        await session.commit()
    activities = _activities(settings, sessions)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.create_licenses, OrderRef(order_id=str(order.id)))
    assert (refused.value.non_retryable, refused.value.type) == (True, "grant-withdrawn")
    assert await _counts(sessions, order.id) == (0, 0)
    # The order fails visibly; what it reserved comes back.
    await ActivityEnvironment().run(activities.release_quota, OrderRef(order_id=str(order.id)))
    async with sessions() as session:
        grant = await session.get(Grant, rights_world.grants["C1"])
        assert grant is not None
        assert grant.quota_used == 0


async def test_an_order_under_a_live_grant_is_fulfilled_and_vendor_orders_need_none(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    activities = _activities(settings, sessions)
    for order in (
        await place_order(sessions, rights_world, quantity=2),
        await place_order(sessions, rights_world, requester="vendor_admin", quantity=1, reserve=False),
    ):
        created = await ActivityEnvironment().run(activities.create_licenses, OrderRef(order_id=str(order.id)))
        assert created.created == order.quantity


async def test_withdrawal_racing_license_creation_never_leaves_licenses_made_after_it(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    orders = [await place_order(sessions, rights_world, quantity=1) for _ in range(8)]
    activities = _activities(settings, sessions)

    async def fulfil(order_id: uuid.UUID, pause: float) -> str:
        await asyncio.sleep(pause)
        try:
            await ActivityEnvironment().run(activities.create_licenses, OrderRef(order_id=str(order_id)))
        except ApplicationError as refused:
            return str(refused.type)
        return "created"

    async def withdraw() -> None:
        await asyncio.sleep(0.01)
        async with unit_of_work(sessions) as session:
            principal = await authenticate(session, TEST_SECRET, rights_world.keys["reseller_admin"])
            await withdraw_grant(session, principal, rights_world.orgs["C1"], "CAD")

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(fulfil(order.id, 0.02 * n) for n, order in enumerate(orders)), withdraw()), 60
    )
    assert set(outcomes[:-1]) <= {"created", "grant-withdrawn"}
    async with sessions() as session:
        grant = await session.get(Grant, rights_world.grants["C1"])
        assert grant is not None
        assert grant.withdrawn_at is not None
        for order, outcome in zip(orders, outcomes, strict=False):
            made = (await session.scalars(select(License.created_at).where(License.order_id == order.id))).all()
            # Created before the withdrawal, whole; or not at all.
            assert len(made) == (1 if outcome == "created" else 0)
            assert all(created < grant.withdrawn_at for created in made), (made, grant.withdrawn_at)
