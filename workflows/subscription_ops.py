"""Starting and steering the subscription, cancellation and revocation workflows from outside (API, CLI, worker).

Ids come from business keys (`subscription-{id}`, `cancellation-{subscription}-{n}`, `revocation-{id}`), and a
start finds the run already there instead of making a second one. Workflows are started by name, so callers
import no workflow code.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from tessera.errors import NotFound
from tessera.models import Cancellation, License, ManagedBy, Order, Product, ProductGroup, Subscription
from tessera.orders.config import workflows_config
from tessera.orders.errors import WorkflowUnavailable
from tessera.orders.facts import order_context
from tessera.processes.schema import ProcessName
from tessera.settings import Settings
from tessera.subscriptions.facts import resolve_for, subscription_context
from workflows import search_attributes as sa
from workflows.client_ops import RPC_TIMEOUT, send_decision
from workflows.subscription_models import (
    ActivatedSignal,
    CancellationWorkflowInput,
    RevocationWorkflowInput,
    StepDecision,
    StepDecisionResult,
    SubscriptionWorkflowInput,
)

SUBSCRIPTION_WORKFLOW = "SubscriptionWorkflow"
CANCELLATION_WORKFLOW = "CancellationWorkflow"
REVOCATION_WORKFLOW = "RevocationWorkflow"


def subscription_summary(subscription: Subscription, product_code: str) -> str:
    """In words, without personal data: what the subscription is."""
    return f"subscription of {subscription.quantity} x {product_code} for organization {subscription.organization_id}"


async def subscription_workflow_input(session: AsyncSession, subscription: Subscription) -> SubscriptionWorkflowInput:
    product = await session.get(Product, subscription.product_id)
    if product is None:
        raise NotFound(f"the product of subscription {subscription.id} no longer exists")
    group = await session.scalar(select(ProductGroup.code).where(ProductGroup.id == product.group_id))
    return SubscriptionWorkflowInput(
        subscription_id=str(subscription.id),
        summary=subscription_summary(subscription, product.code),
        organization_id=str(subscription.organization_id),
        reseller_id=str(subscription.reseller_id) if subscription.reseller_id else None,
        product_code=product.code,
        product_group=group or "",
    )


async def start_subscription_workflow(
    client: Client, task_queue: str, session: AsyncSession, subscription: Subscription
) -> bool:
    """Start `subscription-{id}` unless it runs or ran; ERP-managed subscriptions have none. True if started now."""
    if subscription.managed_by != ManagedBy.tessera:
        return False
    request = await subscription_workflow_input(session, subscription)
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.CUSTOMER, request.organization_id),
        SearchAttributePair(sa.PRODUCT, request.product_code),
        SearchAttributePair(sa.STATUS, subscription.status),
    ]
    if subscription.term_ends_at is not None:
        attributes.append(SearchAttributePair(sa.EXPIRY, subscription.term_ends_at))
    if request.reseller_id is not None:
        attributes.append(SearchAttributePair(sa.RESELLER, request.reseller_id))
    try:
        await client.start_workflow(
            SUBSCRIPTION_WORKFLOW,
            request,
            id=f"subscription-{subscription.id}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
            memo={"summary": request.summary},
            static_summary=request.summary,
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def start_order_subscription(client: Client, task_queue: str, session: AsyncSession, order_id: uuid.UUID) -> None:
    """After a subscription order is fulfilled: start its subscription's workflow (idempotent)."""
    subscription = await session.scalar(select(Subscription).where(Subscription.order_id == order_id))
    if subscription is not None:
        await start_subscription_workflow(client, task_queue, session, subscription)


async def signal_subscription(client: Client, subscription_id: uuid.UUID) -> None:
    """Tell the subscription's workflow to read its subscription again; a finished one needs no telling."""
    handle = client.get_workflow_handle(f"subscription-{subscription_id}")
    try:
        await handle.signal("changed", rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise WorkflowUnavailable(f"the workflow service did not answer ({error.status.name})") from error


async def send_first_activation(client: Client, subscription_id: uuid.UUID, activated_at: datetime) -> None:
    """The activation service's signal: a license of this subscription was activated at `activated_at`."""
    with contextlib.suppress(RPCError):
        await deliver_first_activation(client, subscription_id, activated_at)


async def deliver_first_activation(client: Client, subscription_id: uuid.UUID, activated_at: datetime) -> None:
    """The same signal, raising unless Temporal took it or has no such workflow: one not started yet reads the
    recorded first activation when it begins, and a finished one no longer waits for it."""
    handle = client.get_workflow_handle(f"subscription-{subscription_id}")
    try:
        await handle.signal("activated", ActivatedSignal(activated_at=activated_at), rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def start_cancellation_workflow(
    client: Client, settings: Settings, session: AsyncSession, cancellation_id: uuid.UUID
) -> str:
    """Start `cancellation-{subscription}-{n}` with the cancellation steps as workflows.yaml says now."""
    cancellation = await session.get(Cancellation, cancellation_id)
    if cancellation is None:
        raise NotFound(f"no cancellation {cancellation_id}")
    subscription = await session.get(Subscription, cancellation.subscription_id)
    assert subscription is not None
    context = await subscription_context(session, subscription, cancellation.requested_by_user_id)
    process = resolve_for(workflows_config(settings), ProcessName.cancellation, context)
    request = CancellationWorkflowInput(
        subscription_id=str(subscription.id),
        cancellation_id=str(cancellation.id),
        order_id=str(subscription.order_id),
        n=cancellation.n,
        summary=f"cancellation {cancellation.n} of subscription {subscription.id}",
        process=process,
        facts=context,
        requester_user_id=str(cancellation.requested_by_user_id) if cancellation.requested_by_user_id else None,
    )
    await session.commit()  # no transaction (a SQLite write lock) is held across the call
    await _start(client, settings.task_queue, CANCELLATION_WORKFLOW, cancellation.workflow_id, request, request.summary)
    return cancellation.workflow_id


async def start_revocation_workflow(
    client: Client,
    settings: Settings,
    session: AsyncSession,
    *,
    target: Literal["subscription", "license"],
    target_id: uuid.UUID,
    requester_user_id: uuid.UUID | None,
    reason: str,
) -> str:
    """Start `revocation-{id}` (a subscription's or a license's id) with the revocation steps as configured now."""
    subscription_id: uuid.UUID | None
    if target == "subscription":
        subscription = await session.get(Subscription, target_id)
        if subscription is None:
            raise NotFound(f"no subscription {target_id}")
        order_id, subscription_id = subscription.order_id, subscription.id
        context = await subscription_context(session, subscription, requester_user_id)
    else:
        license = await session.get(License, target_id)
        if license is None:
            raise NotFound(f"no license {target_id}")
        order = await session.get(Order, license.order_id)
        assert order is not None
        order_id, subscription_id = order.id, license.subscription_id
        context = await order_context(session, order)
    process = resolve_for(workflows_config(settings), ProcessName.revocation, context)
    workflow_id = f"revocation-{target_id}"
    request = RevocationWorkflowInput(
        target=target,
        target_id=str(target_id),
        subscription_id=str(subscription_id) if subscription_id else None,
        order_id=str(order_id),
        summary=f"revocation of {target} {target_id}",
        process=process,
        facts=context,
        requester_user_id=str(requester_user_id) if requester_user_id else None,
        reason=reason,
    )
    await session.commit()
    await _start(client, settings.task_queue, REVOCATION_WORKFLOW, workflow_id, request, request.summary)
    return workflow_id


async def _start(
    client: Client,
    task_queue: str,
    workflow: str,
    workflow_id: str,
    request: CancellationWorkflowInput | RevocationWorkflowInput,
    summary: str,
) -> None:
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            workflow,
            request,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={"summary": summary},
            static_summary=summary,
            rpc_timeout=RPC_TIMEOUT,
        )


async def decide_step(client: Client, workflow_id: str, *, approve: bool, decision: StepDecision) -> StepDecisionResult:
    """Approve or reject the approval step a cancellation or revocation waits at."""
    return await send_decision(
        client, workflow_id, approve=approve, decision=decision, result_type=StepDecisionResult, what="request"
    )
