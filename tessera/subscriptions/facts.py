"""A subscription as conditions and templates see it: the order's facts plus the subscription's own."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tessera.licenses import fulfilment
from tessera.models import Subscription, User
from tessera.orders.facts import order_context
from tessera.processes import ConditionContext, RequesterFacts, SubscriptionFacts
from tessera.processes.resolve import ResolvedProcess, resolve_steps
from tessera.processes.schema import ProcessName, WorkflowsConfig


async def subscription_context(
    session: AsyncSession, subscription: Subscription, requester_user_id: Any = None
) -> ConditionContext:
    order = await fulfilment.load_order(session, subscription.order_id)
    context = await order_context(session, order)
    context.subscription = SubscriptionFacts(
        id=str(subscription.id),
        status=subscription.status,
        term_no=subscription.term_no,
        quantity=subscription.quantity,
    )
    if requester_user_id is not None:
        user = await session.get(User, requester_user_id)
        if user is not None:
            context.requester = RequesterFacts(id=str(user.id), email=user.email, kind="user")
    return context


def resolve_for(config: WorkflowsConfig, process: ProcessName, context: ConditionContext) -> ResolvedProcess:
    """The steps of `process` for this subscription (or license), after the overrides that match it."""
    assert context.product is not None
    assert context.organization is not None
    return resolve_steps(
        config,
        process,
        product_group=context.product.group or None,  # read from the database with the rest of the facts
        product=context.product.code,
        organization_ids=[context.organization.id, *context.organization.ancestor_ids],
    )
