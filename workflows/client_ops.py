"""Starting and steering workflows from outside (CLI, API): ids from business keys, one place for the options."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from tessera.db import create_engine, create_session_factory
from tessera.models import Order
from tessera.orders.config import workflows_config
from tessera.orders.errors import (
    NotAnApprover,
    NotWaiting,
    SelfApprovalNotAllowed,
    WorkflowNotStarted,
    WorkflowUnavailable,
)
from tessera.orders.launch import OrderStart, mark_started, order_start, unstarted_order_ids
from tessera.orders.status import OrderStatus
from tessera.settings import Settings
from workflows import search_attributes as sa
from workflows.connection import connect_temporal
from workflows.order_models import ApprovalDecision, DecisionResult, OrderWorkflowInput
from workflows.system_check import SystemCheckInput, SystemCheckResult, SystemCheckWorkflow

ORDER_WORKFLOW = "LicenseOrderWorkflow"
"""Started by name, so that the API does not import workflow code."""
RPC_TIMEOUT = timedelta(seconds=10)
D = TypeVar("D", bound=BaseModel)


async def run_system_check(settings: Settings, *, timeout_seconds: float = 30.0) -> SystemCheckResult:
    client = await connect_temporal(settings)
    return await client.execute_workflow(
        SystemCheckWorkflow.run,
        SystemCheckInput(requested_by="cli"),
        id=f"system-check-{uuid.uuid4()}",
        task_queue=settings.task_queue,
        execution_timeout=timedelta(seconds=timeout_seconds),
    )


def order_workflow_input(start: OrderStart) -> OrderWorkflowInput:
    return OrderWorkflowInput(
        order_id=str(start.order_id),
        summary=start.summary,
        process=start.process,
        facts=start.facts,
        organization_id=start.organization_id,
        reseller_id=start.reseller_id,
        product_code=start.product_code,
    )


async def start_order_workflow(client: Client, task_queue: str, start: OrderStart) -> None:
    """Start `order-{id}` with its frozen steps; starting it again finds the same run, never a second one.

    Search attributes carry ids and codes only (they are not encrypted); the words are in the memo and summary.
    """
    attributes = [
        SearchAttributePair(sa.CUSTOMER, start.organization_id),
        SearchAttributePair(sa.PRODUCT, start.product_code),
        SearchAttributePair(sa.STATUS, OrderStatus.accepted.value),
    ]
    if start.reseller_id is not None:
        attributes.append(SearchAttributePair(sa.RESELLER, start.reseller_id))
    # Closed already (REJECT_DUPLICATE): the order was started, which is all a start has to ensure.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            ORDER_WORKFLOW,
            order_workflow_input(start),
            id=start.workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
            memo={"summary": start.summary},
            static_summary=start.summary,
            rpc_timeout=RPC_TIMEOUT,
        )


async def ensure_order_started(
    session: AsyncSession, client: Client, settings: Settings, order: Order, start: OrderStart | None = None
) -> None:
    """Start the workflow of a committed order unless its start is recorded; record it and commit.

    Raises WorkflowNotStarted when Temporal cannot be reached: the order stays stored, and repeating the
    request (or `tessera orders resume`) starts it later.
    """
    if order.workflow_started_at is not None:
        return
    if start is None:
        start = await order_start(session, order, workflows_config(settings))
        await session.commit()  # never hold a transaction (a SQLite write lock) across a network call
    try:
        await asyncio.wait_for(
            start_order_workflow(client, settings.task_queue, start), RPC_TIMEOUT.total_seconds() + 5
        )
    except (RPCError, RuntimeError, TimeoutError) as error:
        raise WorkflowNotStarted(
            f"order {order.id} is stored, but its workflow could not be started ({type(error).__name__}); "
            "repeat the request with the same Idempotency-Key to start it"
        ) from error
    await mark_started(session, order.id, start.process.version)
    await session.commit()
    await session.refresh(order)


async def decide_order(
    client: Client, workflow_id: str, *, approve: bool, decision: ApprovalDecision
) -> DecisionResult:
    """Send an approval or rejection as a workflow update; its validator says who may and when."""
    return await send_decision(client, workflow_id, approve=approve, decision=decision, result_type=DecisionResult)


async def send_decision(
    client: Client, workflow_id: str, *, approve: bool, decision: BaseModel, result_type: type[D], what: str = "order"
) -> D:
    """An `approve` or `reject` update to a workflow waiting at an approval step, its refusals as domain errors."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: D = await asyncio.wait_for(
            handle.execute_update(
                "approve" if approve else "reject", decision, result_type=result_type, rpc_timeout=RPC_TIMEOUT
            ),
            RPC_TIMEOUT.total_seconds() + 5,
        )
        return result
    except WorkflowUpdateFailedError as failed:
        cause = failed.cause
        kind = cause.type if isinstance(cause, ApplicationError) else None
        if kind == "not_an_approver":
            raise NotAnApprover(f"you are not among the approvers of the step this {what} waits at") from None
        if kind == "self_approval":
            raise SelfApprovalNotAllowed(
                f"this {what} is your own; someone else among its approvers must decide it"
            ) from None
        if kind == "not_waiting":
            raise NotWaiting(f"the {what} is not waiting for a decision (decided already, or needs none)") from None
        raise
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotWaiting(f"the {what}'s workflow has finished; it waits for no decision") from None
        raise WorkflowUnavailable(f"the workflow service did not answer ({error.status.name})") from error
    except (RuntimeError, TimeoutError) as error:
        raise WorkflowUnavailable("the workflow service did not answer; try again") from error


async def resume_orders(settings: Settings, client: Client | None = None) -> int:
    """Start the workflow of every order stored while Temporal was unreachable; returns how many were started.

    Idempotent: a start is recorded per order, and starting an order twice finds the same run.
    """
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    try:
        client = client or await connect_temporal(settings)
        async with sessions() as session:
            waiting = await unstarted_order_ids(session)
        started = 0
        for order_id in waiting:
            async with sessions() as session:
                order = await session.get(Order, order_id)
                if order is None or order.workflow_started_at is not None:
                    continue
                await ensure_order_started(session, client, settings, order)
                started += 1
        return started
    finally:
        await engine.dispose()
