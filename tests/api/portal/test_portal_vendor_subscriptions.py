"""Subscription pages: who sees them, cancel with its effective end stated before and after, uncancel, revoke.

Actions reach the real dev server (`orders_api`), as the API's tests do; no worker runs the workflows, so what the
pages recorded is what the tests read.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tessera.models import Cancellation, Subscription, User, utcnow
from tessera.subscriptions.plans import local_date, plan_of
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.api.subscriptions import (
    Made,
    add_subscription_products,
    give_permissions,
    make_subscription,
    move_current_term,
)
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"
DATA_ID = re.compile(r'data-id="([0-9a-f-]{36})"')


@pytest.fixture
async def made(sessions: Sessions, rights_world: RightsWorld) -> Made:
    """A subscription of C1, whose grant allows cancelling and revoking; C1's admin can sign in."""
    await add_subscription_products(sessions, rights_world)
    await give_permissions(sessions, rights_world, "C1", ["allocate", "cancel", "create", "revoke"])
    for email in (ADMIN, "customer.member@example.com", "foreign.admin@example.com", "sibling.admin@example.com"):
        await give_password(sessions, email)
    return await make_subscription(sessions, rights_world, grant="C1", requester="customer_admin")


async def _subscription(sessions: Sessions, made: Made) -> Subscription:
    async with sessions() as session:
        found = await session.get(Subscription, made.subscription_id)
        assert found is not None
        return found


async def _cancellations(sessions: Sessions, made: Made) -> list[Cancellation]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Cancellation).where(Cancellation.subscription_id == made.subscription_id).order_by(Cancellation.n)
        )
        return list(rows.all())


def _day_shown(sub: Subscription, term_no: int) -> str:
    """The last day of term `term_no` as the English page writes it (`Mar 1, 2027`)."""
    end = plan_of(sub).term(term_no).ends_at
    day = local_date(end - timedelta(microseconds=1), sub.timezone)
    return f"{day:%b} {day.day}, {day.year}"


async def test_admins_see_their_subscriptions_and_nobody_else_does(api: AsyncClient, made: Made) -> None:
    await sign_in_portal(api, ADMIN)
    listed = await api.get("/subscriptions")
    assert listed.status_code == 200
    assert "<h1>Subscriptions</h1>" in listed.text
    assert DATA_ID.findall(listed.text) == [str(made.subscription_id)]
    shown = await api.get(f"/subscriptions/{made.subscription_id}")
    assert shown.status_code == 200
    for license_id in made.license_ids:
        assert f'data-id="{license_id}"' in shown.text
    assert "Cancel subscription" in shown.text
    assert "Revoke subscription" in shown.text
    assert "Last day to cancel" in shown.text
    for stranger in ("customer.member@example.com", "foreign.admin@example.com"):
        async with browser(api) as other:
            await sign_in_portal(other, stranger)
            assert DATA_ID.findall((await other.get("/subscriptions")).text) == []
            for path in ("", "/cancel", "/revoke"):
                hidden = await other.get(f"/subscriptions/{made.subscription_id}{path}")
                assert hidden.status_code == 404, (stranger, path)
    assert (await api.get(f"/subscriptions/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("/subscriptions/not-an-id")).status_code == 404


async def test_cancel_before_the_deadline_states_the_end_of_this_term_then_cancels(
    orders_api: AsyncClient, sessions: Sessions, made: Made, dev_env: WorkflowEnvironment
) -> None:
    sub = await _subscription(sessions, made)
    await sign_in_portal(orders_api, ADMIN)
    confirm = await orders_api.get(f"/subscriptions/{made.subscription_id}/cancel")
    assert confirm.status_code == 200
    assert f"Effective end: after {_day_shown(sub, 1)}, the last day of term 1" in confirm.text
    assert "within the notice period" in confirm.text
    done = await orders_api.post(
        f"/subscriptions/{made.subscription_id}/cancel",
        data={"csrf_token": csrf_of(confirm.text), "term": "1", "reason": "moving to another product"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/subscriptions/{made.subscription_id}?done=cancelled"
    shown = await orders_api.get(done.headers["location"])
    assert "The subscription is cancelled." in shown.text
    assert f"after {_day_shown(sub, 1)}" in shown.text
    assert "Uncancel" in shown.text
    assert "Cancel subscription" not in shown.text
    [cancellation] = await _cancellations(sessions, made)
    assert (cancellation.effective_term_no, cancellation.reason) == (1, "moving to another product")
    described = await dev_env.client.get_workflow_handle(cancellation.workflow_id).describe()
    assert described.workflow_type == "CancellationWorkflow"
    # The same form sent again does nothing more: the cancellation exists, the page shows it.
    again = await orders_api.post(
        f"/subscriptions/{made.subscription_id}/cancel", data={"csrf_token": csrf_of(confirm.text), "term": "1"}
    )
    assert again.status_code == 303
    assert len(await _cancellations(sessions, made)) == 1


async def test_cancel_after_the_deadline_states_the_end_of_the_next_term(
    orders_api: AsyncClient, sessions: Sessions, made: Made
) -> None:
    await move_current_term(sessions, made.subscription_id, cancel_deadline_at=utcnow() - timedelta(seconds=1))
    sub = await _subscription(sessions, made)
    await sign_in_portal(orders_api, ADMIN)
    confirm = await orders_api.get(f"/subscriptions/{made.subscription_id}/cancel")
    assert "has passed: its renewal is binding" in confirm.text
    assert f"Effective end: after {_day_shown(sub, 2)}, the last day of term 2" in confirm.text
    done = await submit(orders_api, f"/subscriptions/{made.subscription_id}/cancel", term="2")
    assert done.status_code == 303
    [cancellation] = await _cancellations(sessions, made)
    assert cancellation.effective_term_no == 2
    assert cancellation.effective_end_at == plan_of(sub).term(2).ends_at
    assert f"after {_day_shown(sub, 2)}" in (await orders_api.get(done.headers["location"])).text


async def test_a_deadline_passing_between_confirmation_and_click_asks_again(
    orders_api: AsyncClient, sessions: Sessions, made: Made
) -> None:
    await sign_in_portal(orders_api, ADMIN)
    confirm = await orders_api.get(f"/subscriptions/{made.subscription_id}/cancel")
    assert 'name="term" value="1"' in confirm.text
    await move_current_term(sessions, made.subscription_id, cancel_deadline_at=utcnow() - timedelta(seconds=1))
    moved = await orders_api.post(
        f"/subscriptions/{made.subscription_id}/cancel", data={"csrf_token": csrf_of(confirm.text), "term": "1"}
    )
    assert moved.status_code == 409
    assert "check the new end and confirm again" in moved.text
    assert 'name="term" value="2"' in moved.text
    assert await _cancellations(sessions, made) == []
    assert (await _subscription(sessions, made)).status == "active"


async def test_uncancel_withdraws_the_cancellation(orders_api: AsyncClient, sessions: Sessions, made: Made) -> None:
    await sign_in_portal(orders_api, ADMIN)
    await submit(orders_api, f"/subscriptions/{made.subscription_id}/cancel", term="1")
    page = f"/subscriptions/{made.subscription_id}"
    withdrawn = await submit(orders_api, page, f"{page}/uncancel")
    assert withdrawn.status_code == 303
    shown = await orders_api.get(withdrawn.headers["location"])
    assert "renews again" in shown.text
    assert "Cancel subscription" in shown.text
    assert [c.status for c in await _cancellations(sessions, made)] == ["withdrawn"]
    assert (await _subscription(sessions, made)).effective_end_at is None
    # Nothing left to withdraw: a refusal page, nothing changed.
    again = await submit(orders_api, page, f"{page}/uncancel")
    assert again.status_code == 409
    assert "no cancellation to withdraw" in again.text


async def test_revoke_names_what_stops_working_then_starts_the_revocation(
    orders_api: AsyncClient, made: Made, dev_env: WorkflowEnvironment
) -> None:
    await sign_in_portal(orders_api, ADMIN)
    confirm = await orders_api.get(f"/subscriptions/{made.subscription_id}/revoke")
    assert confirm.status_code == 200
    assert "its active licenses (2) and their tickets" in confirm.text
    assert "next refresh" in confirm.text
    done = await orders_api.post(
        f"/subscriptions/{made.subscription_id}/revoke", data={"csrf_token": csrf_of(confirm.text), "reason": "fraud"}
    )
    assert done.status_code == 303
    assert "The revocation has started" in (await orders_api.get(done.headers["location"])).text
    described = await dev_env.client.get_workflow_handle(f"revocation-{made.subscription_id}").describe()
    assert described.workflow_type == "RevocationWorkflow"


async def test_people_without_the_right_are_refused_and_forms_need_their_token(
    orders_api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, made: Made
) -> None:
    # C2's own grant lacks `cancel` and `revoke`: its admin sees the subscription but may not act.
    sibling = await make_subscription(sessions, rights_world, "C2", grant="C2", requester="sibling_admin")
    async with browser(orders_api) as other:
        await sign_in_portal(other, "sibling.admin@example.com")
        assert (await other.get(f"/subscriptions/{sibling.subscription_id}")).status_code == 200
        for action in ("cancel", "revoke"):
            refused = await other.get(f"/subscriptions/{sibling.subscription_id}/{action}")
            assert refused.status_code == 403, action
        token = csrf_of((await other.get(f"/subscriptions/{sibling.subscription_id}")).text)
        posted = await other.post(
            f"/subscriptions/{sibling.subscription_id}/cancel", data={"csrf_token": token, "term": "1"}
        )
        assert posted.status_code == 403
        # Another organization's subscription by id: not found, even with a valid token.
        for action, data in [("revoke", {}), ("cancel", {"term": "1"}), ("uncancel", {}),
                             ("cancellation", {"decision": "approve"})]:  # fmt: skip
            foreign = await other.post(
                f"/subscriptions/{made.subscription_id}/{action}", data={"csrf_token": token, **data}
            )
            assert foreign.status_code == 404, action
    await sign_in_portal(orders_api, ADMIN)
    for action in ("cancel", "uncancel", "revoke"):
        forged = await orders_api.post(f"/subscriptions/{made.subscription_id}/{action}", data={"term": "1"})
        assert forged.status_code == 403, action
    odd = await submit(orders_api, f"/subscriptions/{made.subscription_id}/cancel", term="first")
    assert odd.status_code == 422
    assert "confirm the cancellation again" in odd.text
    too_long = await submit(orders_api, f"/subscriptions/{made.subscription_id}/cancel", term="1", reason="x" * 2001)
    assert too_long.status_code == 422
    assert "at most 2000 characters" in too_long.text
    assert await _cancellations(sessions, made) == []


async def test_a_german_speaking_admin_gets_the_pages_in_german(
    api: AsyncClient, sessions: Sessions, made: Made
) -> None:
    async with sessions() as session:
        await session.execute(update(User).where(User.email == ADMIN).values(locale="de"))
        await session.commit()
    await sign_in_portal(api, ADMIN)
    listed = await api.get("/subscriptions")
    assert "<h1>Abonnements</h1>" in listed.text
    shown = await api.get(f"/subscriptions/{made.subscription_id}")
    assert "Letzter Kündigungstag" in shown.text
    assert "Abonnement kündigen" in shown.text
    confirm = await api.get(f"/subscriptions/{made.subscription_id}/cancel")
    assert "Kündigung bestätigen" in confirm.text


async def test_a_cancellation_temporal_did_not_take_is_recorded_and_its_retry_starts_the_workflow(
    api: AsyncClient, orders_api: AsyncClient, sessions: Sessions, made: Made, dev_env: WorkflowEnvironment
) -> None:
    await sign_in_portal(api, ADMIN)
    down = await submit(api, f"/subscriptions/{made.subscription_id}/cancel", term="1")
    assert down.status_code == 503
    assert "Try again" in down.text
    [recorded] = await _cancellations(sessions, made)
    assert recorded.status == "requested"
    # The confirmation page now leads to the subscription; the retry (here through a reachable Temporal) starts it.
    await sign_in_portal(orders_api, ADMIN)
    assert (await orders_api.get(f"/subscriptions/{made.subscription_id}/cancel")).status_code == 303
    page = f"/subscriptions/{made.subscription_id}"
    retried = await submit(orders_api, page, f"{page}/cancel", term="1")
    assert retried.status_code == 303
    described = await dev_env.client.get_workflow_handle(recorded.workflow_id).describe()
    assert described.workflow_type == "CancellationWorkflow"
    assert len(await _cancellations(sessions, made)) == 1
