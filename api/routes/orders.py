"""Orders: accept (idempotently) and start their workflows, read them within reach, approve or reject them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AppState, Cursor, Limit, Session, State, scoped
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.orders import (
    DecisionCreate,
    DecisionRead,
    OrderCreate,
    OrderDetail,
    OrderLicense,
    OrderRead,
    TicketSummary,
    TrailEntryRead,
)
from tessera.errors import Forbidden
from tessera.models import License, Order, OrderStatus, Ticket
from tessera.orders import intake, reads
from tessera.orders.config import workflows_config
from tessera.orders.errors import NotWaiting
from tessera.orders.schema import OrderRequest
from tessera.principal import Principal
from workflows.client_ops import decide_order, ensure_order_started
from workflows.order_models import ApprovalDecision

router = APIRouter(tags=["orders"])

OrdersReader = Annotated[Principal, Depends(scoped("orders:read"))]
OrdersWriter = Annotated[Principal, Depends(scoped("orders:write"))]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Required. Repeating a request with the same key and body returns the same order.",
    ),
]
DECIDED = {OrderStatus.fulfilled, OrderStatus.rejected, OrderStatus.failed}
NOT_WAITING = "The order waits for no decision (decided already, or needs none)."


def order_read(order: Order, product_code: str) -> OrderRead:
    return OrderRead(**_order_fields(order, product_code))


def _order_fields(order: Order, product_code: str) -> dict[str, object]:
    return {
        "id": order.id,
        "status": order.status,
        "workflow_id": order.workflow_id or f"order-{order.id}",
        "workflow_started": order.workflow_started_at is not None,
        "organization_id": order.organization_id,
        "product": product_code,
        "quantity": order.quantity,
        "fields": order.fields,
        "modules": order.modules,
        "allocation": order.allocation,
        "user_id": order.allocate_to_user_id,
        "visibility": order.visibility,
        "external_ref": order.external_ref,
        "process_version": order.process_version,
        "requested_by_user_id": order.requested_by_user_id,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def ticket_summary(ticket: Ticket | None) -> TicketSummary | None:
    if ticket is None:
        return None
    return TicketSummary.model_validate(ticket, from_attributes=True)


def _license(license: License, ticket: Ticket | None) -> OrderLicense:
    return OrderLicense(
        id=license.id,
        line_no=license.line_no,
        status=license.status,
        expires_at=license.expires_at,
        ticket=ticket_summary(ticket),
    )


@router.post(
    "/orders",
    response_model=OrderRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(
        409,
        503,
        s409="The external_ref belongs to an order the caller cannot see.",
        s503="Stored, but Temporal was unreachable (repeat with the same key); or workflows.yaml is invalid.",
    ),
)
async def create_order(
    body: OrderCreate,
    idempotency_key: IdempotencyKey,
    session: Session,
    state: State,
    caller: OrdersWriter,
    response: Response,
) -> OrderRead:
    """Accept an order for licenses and start its workflow; the same Idempotency-Key and body return it again."""
    accepted, code = await place_order(session, state, caller, body, idempotency_key)
    if not accepted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return order_read(accepted.order, code)


async def place_order(
    session: AsyncSession, state: AppState, caller: Principal, body: OrderRequest, idempotency_key: str
) -> tuple[intake.Accepted, str]:
    """Accept the order (or find the one this request repeats), commit it, then make sure its workflow runs.

    Shared by the API and the portal's create-license page, so both accept orders the same way.
    """
    accepted = await intake.accept_order(
        session,
        caller,
        body,
        idempotency_key=idempotency_key,
        workflows_config=lambda: workflows_config(state.settings),
    )
    order = accepted.order
    code = accepted.start.product_code if accepted.start else await reads.product_code_of(session, order)
    # The order is safe before Temporal is asked: if the start fails, a repeat of this request starts it.
    await session.commit()
    await ensure_order_started(session, state.temporal, state.settings, order, accepted.start)
    return accepted, code


@router.get("/orders", response_model=Page[OrderRead])
async def list_orders(
    session: Session,
    caller: OrdersReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[OrderStatus | None, Query(description="Only orders with this status.")] = None,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only orders of this organization and the groups below it.")
    ] = None,
) -> Page[OrderRead]:
    """List the orders of the organizations within the caller's reach, newest first."""
    page = await reads.list_orders(
        session, caller, limit=limit, cursor=cursor, status=status, organization_id=organization_id
    )
    return Page(items=[order_read(order, code) for order, code in page.items], next_cursor=page.next_cursor)


@router.get("/orders/{order_id}", response_model=OrderDetail)
async def get_order(order_id: uuid.UUID, session: Session, caller: OrdersReader) -> OrderDetail:
    """Show an order: status, step trail, and the licenses and tickets created so far (never ticket codes)."""
    order, code = await reads.visible_order(session, caller, order_id)
    licenses = await reads.order_licenses(session, caller, order.id)
    return OrderDetail(
        **_order_fields(order, code),
        trail=[TrailEntryRead.model_validate(entry) for entry in order.trail],
        licenses=[_license(license, ticket) for license, ticket in licenses],
    )


async def _decide(
    session: Session, state: State, caller: Principal, order_id: uuid.UUID, body: DecisionCreate | None, approve: bool
) -> DecisionRead:
    return await decide_on_order(session, state, caller, order_id, (body or DecisionCreate()).comment, approve=approve)


async def decide_on_order(
    session: AsyncSession, state: AppState, caller: Principal, order_id: uuid.UUID, comment: str, *, approve: bool
) -> DecisionRead:
    """Approve or reject as `caller`; the workflow's update validator says who may and when (API and portal)."""
    order, _code = await reads.visible_order(session, caller, order_id)
    if caller.user_id is None:
        raise Forbidden("a service account's key cannot approve or reject: decisions are made by people, use yours")
    if order.status in DECIDED:
        raise NotWaiting(f"the order is {order.status} already; it waits for no decision")
    await session.commit()  # nothing to write here; do not hold a transaction while the workflow decides
    decision = ApprovalDecision(user_id=str(caller.user_id), comment=comment)
    workflow_id = order.workflow_id or f"order-{order.id}"
    result = await decide_order(state.temporal, workflow_id, approve=approve, decision=decision)
    return DecisionRead(order_id=order.id, status=OrderStatus(result.status.value))


Decision = Annotated[DecisionCreate | None, Body(description="An optional comment, kept in the order's trail.")]


@router.post("/orders/{order_id}/approve", response_model=DecisionRead, responses=problems(409, 503, s409=NOT_WAITING))
async def approve_order(
    order_id: uuid.UUID, session: Session, state: State, caller: OrdersWriter, body: Decision = None
) -> DecisionRead:
    """Approve an order waiting at an approval step (only its approvers; a second decision is refused)."""
    return await _decide(session, state, caller, order_id, body, approve=True)


@router.post("/orders/{order_id}/reject", response_model=DecisionRead, responses=problems(409, 503, s409=NOT_WAITING))
async def reject_order(
    order_id: uuid.UUID, session: Session, state: State, caller: OrdersWriter, body: Decision = None
) -> DecisionRead:
    """Reject an order waiting at an approval step; its reserved quota is given back."""
    return await _decide(session, state, caller, order_id, body, approve=False)
