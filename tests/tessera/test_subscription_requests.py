"""The API's subscription writes as services on a real database: receipt time decides, refusals keep state."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.apikeys import authenticate
from tessera.errors import InvalidInput
from tessera.models import Cancellation, Subscription, SubscriptionTerm, utcnow
from tessera.orders.schema import OrderRequest
from tessera.principal import Principal
from tessera.subscriptions import erp_terms, requests
from tessera.subscriptions.refusals import CancellationExists
from tests.api.subscriptions import Made, add_subscription_products, give_permissions, make_subscription
from tests.conftest import TEST_SECRET, RightsWorld


@pytest.fixture
async def made(sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld) -> Made:
    await add_subscription_products(sessions, rights_world)
    await give_permissions(sessions, rights_world, "C1", ["allocate", "cancel", "create", "revoke"])
    return await make_subscription(sessions, rights_world, grant="C1", requester="customer_admin")


async def _principal(session: AsyncSession, world: RightsWorld, who: str) -> Principal:
    return await authenticate(session, TEST_SECRET, world.keys[who])


async def test_a_cancellation_counts_from_its_receipt_not_from_when_it_is_handled(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld, made: Made
) -> None:
    """Received a second before the deadline, handled after it: it still ends the current term."""
    async with sessions() as session:
        subscription = await session.get(Subscription, made.subscription_id)
        assert subscription is not None
        deadline = utcnow() - timedelta(minutes=1)
        subscription.cancel_deadline_at = deadline
        subscription.term_starts_at = deadline - timedelta(hours=1)
        await session.commit()
    async with sessions() as session:
        caller = await _principal(session, rights_world, "customer_admin")
        cancellation = await requests.cancel(
            session, caller, made.subscription_id, received_at=deadline - timedelta(seconds=1)
        )
        await session.commit()
    assert cancellation.effective_term_no == 1
    async with sessions() as session:
        caller = await _principal(session, rights_world, "customer_admin")
        await requests.uncancel(session, caller, made.subscription_id, utcnow())
        late = await requests.cancel(session, caller, made.subscription_id, received_at=deadline)
        await session.commit()
    assert (late.n, late.effective_term_no) == (2, 2)


async def test_a_refused_cancellation_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld, made: Made
) -> None:
    async with sessions() as session:
        caller = await _principal(session, rights_world, "customer_admin")
        await requests.cancel(session, caller, made.subscription_id, received_at=utcnow(), reason="first")
        await session.commit()
    async with sessions() as session:
        caller = await _principal(session, rights_world, "customer_admin")
        with pytest.raises(CancellationExists):
            await requests.cancel(session, caller, made.subscription_id, received_at=utcnow(), reason="second")
        await session.rollback()
    async with sessions() as session:
        count = await session.scalar(select(func.count()).where(Cancellation.subscription_id == made.subscription_id))
        subscription = await session.get(Subscription, made.subscription_id)
    assert count == 1
    assert subscription is not None
    assert subscription.cancellations == 1


async def test_an_erp_term_cannot_end_in_the_past(
    sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    await add_subscription_products(sessions, rights_world)
    made = await make_subscription(sessions, rights_world, product="SUB-CAD-ERP")
    async with sessions() as session:
        caller = await _principal(session, rights_world, "vendor_admin")
        row = await session.scalar(
            select(SubscriptionTerm).where(SubscriptionTerm.subscription_id == made.subscription_id)
        )
        assert row is not None
        row.first_day = utcnow().date() - timedelta(days=10)  # as if the term began days ago
        await session.flush()
        with pytest.raises(InvalidInput) as refused:
            await erp_terms.record_term(
                session,
                caller,
                TEST_SECRET,
                made.subscription_id,
                valid_through=utcnow().date() - timedelta(days=2),
                external_ref="late",
                now=utcnow(),
            )
    assert [issue.field for issue in refused.value.issues] == ["valid_through"]


def test_orders_without_a_takeover_keep_their_fingerprint() -> None:
    """Orders stored before `subscription_start` existed are repeated with the same Idempotency-Key and body."""
    base = {"organization_id": str(uuid.UUID(int=1)), "product": "PRO-CAD", "quantity": 1}
    plain = OrderRequest.model_validate(base)
    assert "subscription_start" not in plain.model_dump_json(exclude_none=True)
    # The digest of the body as it was hashed before the field existed:
    legacy = plain.model_dump(mode="json")
    del legacy["subscription_start"]
    digest = hashlib.sha256(
        json.dumps(legacy, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert plain.fingerprint() == digest
    taken_over = OrderRequest.model_validate({**base, "subscription_start": "2020-01-01"})
    assert taken_over.fingerprint() != digest
