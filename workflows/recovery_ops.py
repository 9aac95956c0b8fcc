"""Starting and steering `recovery-{activation_id}` from outside (the API): by name, so no workflow code is imported.

A retried request finds the run already there (`USE_EXISTING`); a recovery that ended is never started again
(the service answers 409 before this is reached).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

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

from tessera.activation.models import Activation
from tessera.activation.recovery_models import ActivationRecovery
from tessera.models import License, Order, Organization, OrganizationKind, Ticket, User
from tessera.orders.config import workflows_config
from tessera.orders.facts import order_context
from tessera.processes import RequesterFacts
from tessera.processes.schema import ProcessName
from tessera.rights.reach import path_ids
from tessera.settings import Settings
from tessera.subscriptions.facts import resolve_for
from workflows import search_attributes as sa
from workflows.client_ops import RPC_TIMEOUT
from workflows.recovery_models import RecoveryWorkflowInput

RECOVERY_WORKFLOW = "RecoveryWorkflow"


async def recovery_workflow_input(
    session: AsyncSession, settings: Settings, recovery: ActivationRecovery
) -> RecoveryWorkflowInput:
    """The recovery's ids, facts and steps as workflows.yaml says now (the run keeps them)."""
    activation = await session.get_one(Activation, recovery.activation_id)
    ticket = await session.get_one(Ticket, recovery.ticket_id)
    license = await session.get_one(License, activation.license_id)
    order = await session.get_one(Order, license.order_id)
    context = await order_context(session, order)
    requester = await session.get(User, recovery.requested_by_user_id) if recovery.requested_by_user_id else None
    context.requester = RequesterFacts(
        id=str(requester.id if requester else recovery.requested_by_api_key_id),
        email=requester.email if requester else "",
        kind="user" if requester else "service_account",
    )
    process = resolve_for(workflows_config(settings), ProcessName.recovery, context)
    path = await path_ids(session, ticket.organization_id)
    reseller = await session.scalar(
        select(Organization.id).where(Organization.id.in_(path), Organization.kind == OrganizationKind.reseller)
    )
    assert context.product is not None
    return RecoveryWorkflowInput(
        recovery_id=str(recovery.id),
        activation_id=str(activation.id),
        license_id=str(license.id),
        order_id=str(order.id),
        organization_id=str(ticket.organization_id),
        product_code=context.product.code,
        reseller_id=str(reseller) if reseller else None,
        summary=f"recovery of activation {activation.id} (license {license.id}, organization {ticket.organization_id})",
        process=process,
        facts=context,
        requester_user_id=str(recovery.requested_by_user_id) if recovery.requested_by_user_id else None,
    )


async def start_recovery_workflow(
    client: Client, settings: Settings, session: AsyncSession, recovery_id: uuid.UUID
) -> str:
    """Start the recovery's workflow unless it runs; commits the session first (no lock is held across the call)."""
    recovery = await session.get_one(ActivationRecovery, recovery_id)
    request = await recovery_workflow_input(session, settings, recovery)
    await session.commit()
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.CUSTOMER, request.organization_id),
        SearchAttributePair(sa.PRODUCT, request.product_code),
        SearchAttributePair(sa.STATUS, "pending"),
    ]
    if request.reseller_id is not None:
        attributes.append(SearchAttributePair(sa.RESELLER, request.reseller_id))
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            RECOVERY_WORKFLOW,
            request,
            id=recovery.workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
            memo={"summary": request.summary},
            static_summary=request.summary,
            rpc_timeout=RPC_TIMEOUT,
        )
    return recovery.workflow_id
