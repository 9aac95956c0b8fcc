"""Approvals: what waits for my decision (orders; cancellations and revocations of subscriptions), with a comment
and Approve / Reject.

Listed are the orders within reach that wait at an approval step whose approvers, read as the workflow reads
them when a decision arrives, include me (and not as the order's requester, unless the step allows that). The
decision itself goes through the same path as `POST /api/v1/orders/{id}/approve`: the workflow's update and its
validator decide, so a tampered form is refused there.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.responses import Response
from temporalio.client import Client

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.pages import subscription_approvals
from api.portal.pages.orders import organization_names, people_names
from api.portal.render import redirect, render, translate
from api.portal.routing import PortalRoute
from api.routes.orders import decide_on_order
from tessera.errors import ConfigError, Forbidden, InvalidInput, NotFound
from tessera.models import Order
from tessera.orders import approvals
from tessera.orders.config import workflows_config
from tessera.orders.errors import NotWaiting, WorkflowsConfigInvalid
from tessera.orders.launch import order_start
from tessera.principal import Principal
from tessera.processes import ResolvedProcess
from tessera.subscriptions.refusals import NotWaitingForDecision
from workflows.order_models import OrderWorkflowInput

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
log = logging.getLogger(__name__)

FLASHES = {
    "approved": "The order is approved.",
    "rejected": "The order is rejected.",
    "request-approved": "Your approval is recorded.",
    "request-rejected": "Your rejection is recorded.",
}


@dataclass(frozen=True)
class Waiting:
    order: Order
    product_code: str
    step: str


def _principal(page: Page) -> Principal:
    assert page.viewer is not None
    return page.viewer.principal


async def _started_process(client: Client, workflow_id: str) -> ResolvedProcess | None:
    """The steps the order's workflow runs, from its start event: what it froze when the file was different."""
    started = await subscription_approvals.started_input(client, workflow_id, OrderWorkflowInput)
    return started.process if started is not None else None


async def _process_of(page: Page, session: Session, order: Order) -> ResolvedProcess | None:
    """The order's steps: resolved again when workflows.yaml is unchanged since it started, else read from Temporal."""
    try:
        start = await order_start(session, order, workflows_config(page.state.settings))
    except (ConfigError, WorkflowsConfigInvalid, NotFound):
        start = None
    if start is not None and start.process.version == order.process_version:
        return start.process
    return await _started_process(page.state.temporal, order.workflow_id or f"order-{order.id}")


async def waiting_for(page: Page, session: Session) -> list[Waiting]:
    """The orders that wait for a decision the viewer may make now."""
    principal = _principal(page)
    found = []
    for order, code in await approvals.pending_orders(session, principal):
        process = await _process_of(page, session, order)
        waiting = approvals.waiting_at(order, process) if process is not None else None
        if waiting is not None and await approvals.may_decide(session, principal, order, waiting):
            found.append(Waiting(order=order, product_code=code, step=waiting.step.label))
    return found


async def _inbox(page: Page, session: Session, *, status: int = 200, flash: str = "", alert: str = "") -> Response:
    items = await waiting_for(page, session)
    requests = await subscription_approvals.waiting_requests(session, page.state, _principal(page))
    organizations = await organization_names(
        session,
        {item.order.organization_id for item in items} | {item.subscription.organization_id for item in requests},
    )
    requesters = {item.order.requested_by_user_id for item in items} | {item.requester_id for item in requests}
    people = await people_names(session, _principal(page), {user for user in requesters if user is not None})
    return render(
        page,
        "portal/approvals/inbox.html",
        status=status,
        nav="approvals",
        items=items,
        requests=requests,
        organizations=organizations,
        people=people,
        flash=flash,
        alert=alert,
    )


@router.get("/approvals")
async def approvals_inbox(page: SignedInPage, session: Session, decided: str | None = None) -> Response:
    """The orders, cancellations and revocations waiting for my decision."""
    flash = translate(page, FLASHES[decided]) if decided in FLASHES else ""
    return await _inbox(page, session, flash=flash)


@router.post("/approvals")
async def decide(page: SignedInPage, form: Form, session: Session) -> Response:
    """Approve or reject one waiting order, cancellation or revocation, with a comment kept in its trail."""
    kind = text(form, "kind", max_length=20) or "order"
    if kind not in ("order", "cancellation", "revocation"):
        raise InvalidInput("there is no such kind of request")
    try:
        target = uuid.UUID(text(form, "subscription" if kind != "order" else "order", max_length=40))
    except ValueError:
        raise NotFound("no such request") from None
    choice = text(form, "decision", max_length=10)
    if choice not in ("approve", "reject"):
        raise InvalidInput("choose Approve or Reject")
    comment = text(form, "comment", max_length=2000)
    approve = choice == "approve"
    try:
        if kind == "order":
            await decide_on_order(session, page.state, _principal(page), target, comment, approve=approve)
        else:
            await subscription_approvals.decide(
                session,
                page.state,
                _principal(page),
                "cancellation" if kind == "cancellation" else "revocation",
                target,
                comment,
                approve=approve,
            )
    except (NotWaiting, NotWaitingForDecision):
        await session.rollback()
        alert = translate(page, "This was decided by someone else (or no longer waits) before your decision.")
        return await _inbox(page, session, status=409, alert=alert)
    except Forbidden as error:
        if error.code in ("not-an-approver", "self-approval-not-allowed"):
            await session.rollback()
            return await _inbox(page, session, status=403, alert=error.detail)
        raise
    outcome = "approved" if approve else "rejected"
    return redirect(f"/approvals?decided={outcome if kind == 'order' else 'request-' + outcome}")
