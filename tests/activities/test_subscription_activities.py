"""Subscription activities called directly, twice each: a retry never writes a second row or changes more."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.subscriptions import SubscriptionActivities
from tessera.models import Event, SubscriptionEvent, SubscriptionTerm, User
from tessera.orders.config import workflows_config
from tessera.processes.startup import load_configured_workflows
from tessera.settings import REPO_ROOT, Settings
from tessera.subscriptions.plans import plan_of
from tests.conftest import TEST_SECRET, RightsWorld
from tests.workflows.subscription_harness import add_subscription_product, buy_subscription
from workflows.order_models import translated_sources
from workflows.subscription_models import StepInput, TermRef


def _activities(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> SubscriptionActivities:
    return SubscriptionActivities(
        sessions,
        TEST_SECRET,
        REPO_ROOT / "config" / "templates",
        "http://portal.test",
        lambda: workflows_config(settings),
    )


async def _count(sessions: async_sessionmaker[AsyncSession], model: type, **where: object) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_commitment_renewal_and_expiry_happen_once_however_often_they_are_retried(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, rights_world: RightsWorld
) -> None:
    activities = _activities(sessions, settings)
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product, quantity=2)
    term = plan_of(subscription).term(1)
    ref = TermRef(subscription_id=str(subscription.id), term_no=1, at=term.cancel_deadline_at)
    assert await activities.commit(ref) is True
    assert await activities.commit(ref) is True
    renewal = TermRef(subscription_id=str(subscription.id), term_no=2, at=term.ends_at)
    first, second = await activities.renew(renewal), await activities.renew(renewal)
    assert first == second
    assert first.term is not None
    assert first.term.number == 2
    assert await _count(sessions, SubscriptionTerm, subscription_id=subscription.id) == 2
    assert await _count(sessions, SubscriptionEvent, subscription_id=subscription.id, action="renewed") == 1
    later = TermRef(subscription_id=str(subscription.id), term_no=2, at=term.ends_at + timedelta(days=400))
    await activities.expire(later)
    await activities.expire(later)
    assert await _count(sessions, Event, name="subscription.expired") == 1
    assert (await activities.snapshot(ref)).status == "expired"


async def test_a_reminder_goes_to_each_admin_in_their_language_once(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, rights_world: RightsWorld
) -> None:
    activities = _activities(sessions, settings)
    product = await add_subscription_product(sessions, rights_world)
    subscription = await buy_subscription(sessions, rights_world, product)
    async with sessions() as session:
        admin = await session.get(User, rights_world.users["customer_admin"])
        assert admin is not None
        admin.locale = "de-AT"
        await session.commit()
    templates = load_configured_workflows(settings).templates
    assert translated_sources(templates, "subscription_reminder.txt.j2")  # German text ships
    step = StepInput(
        subscription_id=str(subscription.id),
        order_id=str(subscription.order_id),
        key=f"subscription-{subscription.id}:term-1:a month before the deadline",
        kind="notify",
        template="subscription_reminder.txt.j2",
        source=templates["subscription_reminder.txt.j2"],
        translations=translated_sources(templates, "subscription_reminder.txt.j2"),
        to=["group_admins"],
        variables={"reminder": "a month before the deadline", "of": "cancel_deadline"},
    )
    await activities.step(step)
    await activities.step(step)
    async with sessions() as session:
        rows = (await session.scalars(select(Event).where(Event.order_id == subscription.order_id))).all()
    by_locale = {row.payload["locale"]: row for row in rows}
    assert set(by_locale) == {"en", "de"}
    assert by_locale["de"].recipients == ["customer.admin@example.com"]
    assert "customer.admin@example.com" not in by_locale["en"].recipients
    assert by_locale["de"].body != by_locale["en"].body
