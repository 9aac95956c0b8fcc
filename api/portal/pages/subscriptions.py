"""Subscriptions: the list and a subscription's terms, with cancel, uncancel and revoke behind confirmation pages.

Every read and every action goes through the API's own code (`tessera.subscriptions`, and the shared functions of
`api.routes.subscriptions`), so who may see or do what, and when a cancellation takes effect, is decided there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import AppState, Session, State
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from api.routes.subscription_decisions import cancellation_workflow, decide, waiting_for_approval
from api.routes.subscriptions import (
    ReceivedAt,
    request_cancellation,
    start_subscription_revocation,
    withdraw_cancellation,
)
from api.schemas.subscriptions import StepDecisionCreate
from tessera.activation.models import Activation, ActivationStatus
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import (
    LIVE_CANCELLATION_STATUSES,
    CancellationStatus,
    License,
    LicenseStatus,
    ManagedBy,
    Organization,
    Product,
    SubscriptionStatus,
    utcnow,
)
from tessera.orders.errors import WorkflowNotStarted
from tessera.pagination import DEFAULT_LIMIT
from tessera.subscriptions import reads, requests
from tessera.subscriptions.plans import local_date
from tessera.subscriptions.refusals import CancellationExists, EffectiveEndMoved

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
MAX_REASON = 2000
LIVE = (SubscriptionStatus.active, SubscriptionStatus.non_renewing, SubscriptionStatus.pending)


@dataclass(frozen=True)
class Names:
    """Product and organization names of the subscriptions on a page, looked up once."""

    products: dict[uuid.UUID, Any]
    organizations: dict[uuid.UUID, str]


async def _names(session: AsyncSession, rows: Iterable[reads.Listed]) -> Names:
    product_ids = {row.subscription.product_id for row in rows}
    organization_ids = {row.subscription.organization_id for row in rows}
    products = await session.execute(select(Product.id, Product.name).where(Product.id.in_(product_ids)))
    organizations = await session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(organization_ids))
    )
    return Names({r[0]: r[1] for r in products.all()}, {r[0]: r[1] for r in organizations.all()})


def last_day(end: datetime, timezone: str) -> date:
    """The inclusive last day of a term ending (exclusively) at `end`."""
    return local_date(end - timedelta(microseconds=1), timezone)


@router.get("/subscriptions")
async def list_subscriptions(page: SignedInPage, session: Session, cursor: str | None = None) -> Response:
    """The subscriptions of the organizations I administer, newest first."""
    assert page.viewer is not None
    listed = await reads.list_subscriptions(session, page.viewer.principal, limit=DEFAULT_LIMIT, cursor=cursor)
    return render(
        page,
        "portal/subscriptions/list.html",
        nav="subscriptions",
        rows=listed.items,
        names=await _names(session, listed.items),
        next_cursor=listed.next_cursor,
    )


async def _detail_context(
    page: Page, session: AsyncSession, state: AppState, subscription_id: uuid.UUID
) -> dict[str, Any]:
    assert page.viewer is not None
    detail = await reads.subscription_detail(session, page.viewer.principal, subscription_id)
    sub = detail.subscription
    licenses = await session.scalars(
        select(License).where(License.subscription_id == sub.id).order_by(License.line_no, License.id)
    )
    live = next((c for c in reversed(detail.cancellations) if c.status in LIVE_CANCELLATION_STATUSES), None)
    awaiting = revocation_awaiting = None
    if live is not None and live.status == CancellationStatus.requested:
        awaiting = await waiting_for_approval(state.temporal, live.workflow_id)
    if sub.status in LIVE:
        revocation_awaiting = await waiting_for_approval(state.temporal, requests.revocation_workflow_id(sub.id))
    return {
        "detail": detail,
        "sub": sub,
        "names": await _names(session, [detail]),
        "licenses": list(licenses.all()),
        "live_cancellation": live,
        "awaiting_approval": awaiting,
        "revocation_awaiting": revocation_awaiting,
        "last_day": last_day,
        "can_cancel": sub.managed_by == ManagedBy.tessera and sub.status == SubscriptionStatus.active and live is None,
        "can_uncancel": live is not None and sub.status in (SubscriptionStatus.active, SubscriptionStatus.non_renewing),
        "can_revoke": sub.status in LIVE and not revocation_awaiting,
    }


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


DONE = {
    "cancelled": N_("The subscription is cancelled."),
    "uncancelled": N_("The cancellation is withdrawn: the subscription renews again."),
    "revoked": N_("The revocation has started: the subscription, its licenses and tickets end."),
    "approved": N_("The cancellation is approved."),
    "rejected": N_("The cancellation is rejected: the subscription renews as before."),
    "revocation-approved": N_("The revocation is approved."),
    "revocation-rejected": N_("The revocation is rejected: the subscription stays as it is."),
}


@router.get("/subscriptions/{subscription_id}")
async def show_subscription(
    page: SignedInPage, session: Session, state: State, subscription_id: uuid.UUID, done: str | None = None
) -> Response:
    """A subscription: its terms, deadlines, cancellations and licenses."""
    context = await _detail_context(page, session, state, subscription_id)
    flash = translate(page, DONE[done]) if done in DONE else ""
    return render(page, "portal/subscriptions/detail.html", nav="subscriptions", flash=flash, errors={}, **context)


async def _cancel_page(
    page: Page,
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    flash: str = "",
    reason: str = "",
) -> Response:
    assert page.viewer is not None
    end = await requests.cancel_preview(session, page.viewer.principal, subscription_id, utcnow())
    listed = await reads.visible_subscription(session, page.viewer.principal, subscription_id)
    return render(
        page,
        "portal/subscriptions/cancel.html",
        status=status,
        nav="subscriptions",
        sub=listed.subscription,
        current=listed.current,
        names=await _names(session, [listed]),
        end=end,
        end_day=last_day(end.ends_at, listed.subscription.timezone),
        errors=errors or {},
        flash=flash,
        reason=reason,
        max_reason=MAX_REASON,
    )


@router.get("/subscriptions/{subscription_id}/cancel")
async def confirm_cancel(page: SignedInPage, session: Session, subscription_id: uuid.UUID) -> Response:
    """Before cancelling: when the subscription would end if I confirm now."""
    try:
        return await _cancel_page(page, session, subscription_id)
    except CancellationExists:
        return redirect(f"/subscriptions/{subscription_id}")


@router.post("/subscriptions/{subscription_id}/cancel")
async def cancel_subscription(
    received_at: ReceivedAt, page: SignedInPage, form: Form, session: Session, state: State, subscription_id: uuid.UUID
) -> Response:
    """Cancel, if it still ends with the term I confirmed (the API's cancellation, with its workflow)."""
    assert page.viewer is not None
    reason = term = ""
    try:
        reason = text(form, "reason", max_length=MAX_REASON).strip()
        term = text(form, "term", max_length=12)
        if not term.isdigit():
            raise InvalidInput("term: confirm a term", issues=[FieldIssue("term", "confirm the cancellation again")])
        await request_cancellation(
            session,
            state,
            page.viewer.principal,
            subscription_id,
            received_at=received_at,
            reason=reason or None,
            expected_term_no=int(term),
        )
    except CancellationExists:
        # Cancelled already (a second click, or the repeat that starts a workflow Temporal could not take).
        return redirect(f"/subscriptions/{subscription_id}")
    except WorkflowNotStarted as error:
        # Recorded, and counted from its receipt; repeating the request starts its workflow.
        return render(
            page, "portal/subscriptions/retry.html", status=error.status, nav="subscriptions",
            subscription_id=subscription_id, detail=error.detail, term=term,
        )  # fmt: skip
    except EffectiveEndMoved:
        flash = translate(page, "The notice deadline has passed meanwhile: check the new end and confirm again.")
        return await _cancel_page(page, session, subscription_id, status=409, flash=flash, reason=reason)
    except InvalidInput as error:
        await session.rollback()
        return await _cancel_page(
            page, session, subscription_id, status=422, errors=field_errors(error.issues), reason=reason
        )
    return redirect(f"/subscriptions/{subscription_id}?done=cancelled")


@router.post("/subscriptions/{subscription_id}/uncancel")
async def uncancel_subscription(
    page: SignedInPage, form: Form, session: Session, state: State, subscription_id: uuid.UUID
) -> Response:
    """Withdraw the cancellation: the subscription renews again."""
    del form  # checked for its CSRF token; nothing else is asked
    assert page.viewer is not None
    await withdraw_cancellation(session, state, page.viewer.principal, subscription_id)
    return redirect(f"/subscriptions/{subscription_id}?done=uncancelled")


async def _revoke_page(
    page: Page,
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    assert page.viewer is not None
    await requests.check_subscription_revocable(session, page.viewer.principal, subscription_id)
    listed = await reads.visible_subscription(session, page.viewer.principal, subscription_id)
    licenses = await session.scalar(
        select(func.count(License.id)).where(
            License.subscription_id == subscription_id, License.status == LicenseStatus.active
        )
    )
    devices = await session.scalar(
        select(func.count(Activation.id))
        .join(License, License.id == Activation.license_id)
        .where(License.subscription_id == subscription_id, Activation.status == ActivationStatus.active)
    )
    return render(
        page,
        "portal/subscriptions/revoke.html",
        status=status,
        nav="subscriptions",
        sub=listed.subscription,
        names=await _names(session, [listed]),
        licenses=licenses or 0,
        devices=devices or 0,
        errors=errors or {},
        max_reason=MAX_REASON,
    )


@router.get("/subscriptions/{subscription_id}/revoke")
async def confirm_revoke(page: SignedInPage, session: Session, subscription_id: uuid.UUID) -> Response:
    """Before revoking: what stops working."""
    return await _revoke_page(page, session, subscription_id)


@router.post("/subscriptions/{subscription_id}/revoke")
async def revoke_subscription(
    page: SignedInPage, form: Form, session: Session, state: State, subscription_id: uuid.UUID
) -> Response:
    """Revoke at once (the API's revocation, with its workflow)."""
    assert page.viewer is not None
    try:
        reason = text(form, "reason", max_length=MAX_REASON).strip()
    except InvalidInput as error:
        return await _revoke_page(page, session, subscription_id, status=422, errors=field_errors(error.issues))
    await start_subscription_revocation(session, state, page.viewer.principal, subscription_id, reason)
    return redirect(f"/subscriptions/{subscription_id}?done=revoked")


async def _decision(
    page: Page, form: FormData, session: AsyncSession, state: AppState, subscription_id: uuid.UUID, field: str
) -> tuple[bool, str] | Response:
    """The decision and comment of an approval form, or the page again with the comment's error."""
    decision = text(form, "decision", max_length=16)
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision: approve or reject", issues=[FieldIssue("decision", "approve or reject")])
    try:
        return decision == "approve", text(form, field, max_length=MAX_REASON).strip()
    except InvalidInput as error:
        await session.rollback()
        context = await _detail_context(page, session, state, subscription_id)
        return render(
            page, "portal/subscriptions/detail.html", status=422, nav="subscriptions", flash="",
            errors=field_errors(error.issues), **context,
        )  # fmt: skip


@router.post("/subscriptions/{subscription_id}/cancellation")
async def decide_cancellation(
    page: SignedInPage, form: Form, session: Session, state: State, subscription_id: uuid.UUID
) -> Response:
    """Approve or reject the cancellation waiting at an approval step (its workflow says who may)."""
    assert page.viewer is not None
    found = await _decision(page, form, session, state, subscription_id, "comment")
    if isinstance(found, Response):
        return found
    approve, comment = found
    principal = page.viewer.principal
    workflow_id = await cancellation_workflow(session, principal, subscription_id)
    await decide(session, state, principal, workflow_id, StepDecisionCreate(comment=comment), approve=approve)
    return redirect(f"/subscriptions/{subscription_id}?done={'approved' if approve else 'rejected'}")


@router.post("/subscriptions/{subscription_id}/revocation")
async def decide_revocation(
    page: SignedInPage, form: Form, session: Session, state: State, subscription_id: uuid.UUID
) -> Response:
    """Approve or reject the revocation waiting at an approval step (its workflow says who may)."""
    assert page.viewer is not None
    found = await _decision(page, form, session, state, subscription_id, "revocation_comment")
    if isinstance(found, Response):
        return found
    approve, comment = found
    principal = page.viewer.principal
    await reads.visible_subscription(session, principal, subscription_id)
    workflow_id = requests.revocation_workflow_id(subscription_id)
    await decide(session, state, principal, workflow_id, StepDecisionCreate(comment=comment), approve=approve)
    outcome = "revocation-approved" if approve else "revocation-rejected"
    return redirect(f"/subscriptions/{subscription_id}?done={outcome}")
