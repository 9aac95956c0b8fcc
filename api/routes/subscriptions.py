"""Subscriptions: read them within reach; cancel, uncancel, revoke, change seats, record ERP terms; decide steps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Response, status
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from api.deps import AppState, Cursor, Limit, Session, State, scoped
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.subscriptions import (
    CancelCreate,
    CancellationRead,
    CancelRead,
    CurrentTerm,
    ErpTermCreate,
    EventRead,
    RevocationRead,
    RevokeCreate,
    SubscriptionDetail,
    SubscriptionRead,
    SubscriptionUpdate,
    TermRead,
    UncancelRead,
)
from tessera.catalog.service import format_amount
from tessera.errors import TesseraError
from tessera.models import (
    Cancellation,
    CancellationStatus,
    ManagedBy,
    SubscriptionStatus,
    SubscriptionTerm,
    TermKind,
    utcnow,
)
from tessera.orders.errors import WorkflowNotStarted
from tessera.principal import Principal
from tessera.schema_base import Code
from tessera.subscriptions import erp_terms, reads, requests
from tessera.subscriptions.plans import local_date
from tessera.subscriptions.refusals import CancellationExists, EffectiveEndMoved
from tessera.subscriptions.terms import utc
from workflows import subscription_ops
from workflows.client_ops import RPC_TIMEOUT

router = APIRouter(tags=["subscriptions"])

SubscriptionsReader = Annotated[Principal, Depends(scoped("subscriptions:read"))]
SubscriptionsWriter = Annotated[Principal, Depends(scoped("subscriptions:write"))]
T = TypeVar("T")


def received_now() -> datetime:
    """The instant the request arrived (resolved before anything else): what a cancellation counts from."""
    return utcnow()


ReceivedAt = Annotated[datetime, Depends(received_now)]
S409_CANCEL = (
    "A cancellation exists already (the detail names its effective end), or the subscription is pending (revoke "
    "it), ended, or managed by the ERP."
)
S503_START = "Recorded, but Temporal was unreachable: repeat the request to start its workflow."


def _money(amount: Decimal | None, currency: str | None) -> str | None:
    if amount is None:
        return None
    return str(amount) if currency is None else format_amount(amount, currency)


def _current(listed: reads.Listed) -> CurrentTerm | None:
    row = listed.current
    if row is None:
        return None
    return CurrentTerm(
        number=row.term_no,
        first_day=row.first_day,
        valid_through=row.valid_through,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        last_day_to_cancel=row.last_day_to_cancel,
        cancel_deadline_at=row.cancel_deadline_at,
        price=_money(row.unit_price, row.currency),
    )


def subscription_read(listed: reads.Listed) -> SubscriptionRead:
    sub = listed.subscription
    return SubscriptionRead(
        id=sub.id,
        status=SubscriptionStatus(sub.status),
        order_id=sub.order_id,
        organization_id=sub.organization_id,
        reseller_id=sub.reseller_id,
        product=listed.product_code,
        managed_by=ManagedBy(sub.managed_by),
        quantity=sub.quantity,
        next_quantity=sub.next_quantity,
        unit_price=_money(sub.unit_price, sub.currency),
        currency=sub.currency,
        timezone=sub.timezone,
        start_date=sub.start_date,
        imported_terms=sub.imported_terms,
        current_term=_current(listed),
        effective_end_at=sub.effective_end_at,
        revoked_at=sub.revoked_at,
        ended_at=sub.ended_at,
        workflow_id=sub.workflow_id,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


def term_read(row: SubscriptionTerm) -> TermRead:
    return TermRead(
        term_no=row.term_no,
        kind=TermKind(row.kind),
        first_day=row.first_day,
        valid_through=row.valid_through,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        last_day_to_cancel=row.last_day_to_cancel,
        cancel_deadline_at=row.cancel_deadline_at,
        quantity=row.quantity,
        unit_price=_money(row.unit_price, row.currency),
        currency=row.currency,
        amount=_money(row.amount, row.currency),
        committed_at=row.committed_at,
        renewed_at=row.renewed_at,
        external_ref=row.external_ref,
    )


def cancellation_read(cancellation: Cancellation) -> CancellationRead:
    return CancellationRead.model_validate(cancellation, from_attributes=True)


async def _shown(session: Session, caller: Principal, subscription_id: uuid.UUID) -> SubscriptionRead:
    return subscription_read(await reads.visible_subscription(session, caller, subscription_id))


async def run_workflow_call(call: Awaitable[T]) -> T:
    """A start or signal, bounded in time; Temporal unreachable is a 503, never a 500."""
    try:
        return await asyncio.wait_for(call, RPC_TIMEOUT.total_seconds() + 5)
    except TesseraError:
        raise
    except (RPCError, RuntimeError, TimeoutError) as error:
        raise WorkflowNotStarted(
            f"the request is recorded, but its workflow could not be started ({type(error).__name__}); "
            "repeat the request to start it"
        ) from error


async def request_cancellation(
    session: AsyncSession,
    state: AppState,
    caller: Principal,
    subscription_id: uuid.UUID,
    *,
    received_at: datetime,
    reason: str | None,
    expected_term_no: int | None = None,
) -> Cancellation:
    """Record a cancellation and start its workflow (the API's and the portal's path).

    `expected_term_no`: the term whose end the person confirmed; another one is refused, nothing recorded.
    """
    try:
        cancellation = await requests.cancel(session, caller, subscription_id, received_at=received_at, reason=reason)
    except CancellationExists:
        # A repeat of a request whose workflow could not be started starts it now, then answers as before.
        await session.rollback()
        live = await requests.existing_cancellation(session, subscription_id)
        if live is not None and live.status == CancellationStatus.requested:
            await run_workflow_call(
                subscription_ops.start_cancellation_workflow(state.temporal, state.settings, session, live.id)
            )
        raise
    if expected_term_no is not None and cancellation.effective_term_no != expected_term_no:
        await session.rollback()
        raise EffectiveEndMoved(
            f"the cancellation would now end term {cancellation.effective_term_no}, not term {expected_term_no}"
        )
    cancellation_id = cancellation.id
    await session.commit()
    await run_workflow_call(
        subscription_ops.start_cancellation_workflow(state.temporal, state.settings, session, cancellation_id)
    )
    found = await session.get(Cancellation, cancellation_id)
    assert found is not None
    return found


async def withdraw_cancellation(
    session: AsyncSession, state: AppState, caller: Principal, subscription_id: uuid.UUID
) -> tuple[Cancellation, bool]:
    """Uncancel and tell the subscription's workflow; the flag says whether it was told at once."""
    cancellation = await requests.uncancel(session, caller, subscription_id, utcnow())
    cancellation_id = cancellation.id
    await session.commit()
    notified = True
    try:
        await run_workflow_call(subscription_ops.signal_subscription(state.temporal, subscription_id))
    except TesseraError:
        # Recorded is what counts: the workflow reads the subscription under its lock at its next step anyway.
        notified = False
    found = await session.get(Cancellation, cancellation_id)
    assert found is not None
    return found, notified


async def start_subscription_revocation(
    session: AsyncSession, state: AppState, caller: Principal, subscription_id: uuid.UUID, reason: str
) -> str:
    """Check the revocation and start its workflow; the answer is the workflow's id."""
    target = await requests.check_subscription_revocable(session, caller, subscription_id)
    await session.commit()
    return await run_workflow_call(
        subscription_ops.start_revocation_workflow(
            state.temporal,
            state.settings,
            session,
            target="subscription",
            target_id=target.target_id,
            requester_user_id=caller.user_id,
            reason=reason,
        )
    )


@router.get("/subscriptions", response_model=Page[SubscriptionRead])
async def list_subscriptions(
    session: Session,
    caller: SubscriptionsReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[SubscriptionStatus | None, Query(description="Only subscriptions with this status.")] = None,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only subscriptions of this organization and the groups below it.")
    ] = None,
    reseller_id: Annotated[uuid.UUID | None, Query(description="Only subscriptions sold by this reseller.")] = None,
    product: Annotated[Code | None, Query(description="Only subscriptions of this product (its code).")] = None,
    expiring_before: Annotated[
        AwareDatetime | None,
        Query(description="Live subscriptions whose current term (or, when cancelled, effective end) ends before it."),
    ] = None,
) -> Page[SubscriptionRead]:
    """List the subscriptions of the organizations the caller administers, newest first."""
    page = await reads.list_subscriptions(
        session,
        caller,
        limit=limit,
        cursor=cursor,
        status=status,
        organization_id=organization_id,
        reseller_id=reseller_id,
        product=product,
        expiring_before=expiring_before,
    )
    return Page(items=[subscription_read(row) for row in page.items], next_cursor=page.next_cursor)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionDetail)
async def get_subscription(
    subscription_id: uuid.UUID, session: Session, caller: SubscriptionsReader
) -> SubscriptionDetail:
    """Show a subscription: current term and deadlines, seats, term history, cancellations and events."""
    detail = await reads.subscription_detail(session, caller, subscription_id)
    return SubscriptionDetail(
        **subscription_read(detail).model_dump(),
        terms=[term_read(row) for row in detail.terms],
        cancellations=[cancellation_read(row) for row in detail.cancellations],
        events=[EventRead.model_validate(row, from_attributes=True) for row in detail.events],
    )


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionRead,
    responses=problems(409, s409="The subscription is cancelled (uncancel it first) or has ended."),
)
async def update_subscription(
    subscription_id: uuid.UUID, body: SubscriptionUpdate, session: Session, caller: SubscriptionsWriter
) -> SubscriptionRead:
    """Change the seats from the next renewal on: more need `create` and quota (held at once), fewer `cancel`."""
    await requests.change_quantity(session, caller, subscription_id, body.quantity)
    await session.commit()
    return await _shown(session, caller, subscription_id)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=CancelRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503, s409=S409_CANCEL, s503=S503_START),
)
async def cancel_subscription(
    received_at: ReceivedAt,
    subscription_id: uuid.UUID,
    session: Session,
    state: State,
    caller: SubscriptionsWriter,
    body: Annotated[CancelCreate | None, Body()] = None,
) -> CancelRead:
    """Cancel: before the notice deadline it ends with the current term, after it with the next; says when."""
    found = await request_cancellation(
        session, state, caller, subscription_id, received_at=received_at, reason=(body or CancelCreate()).reason
    )
    shown = await _shown(session, caller, subscription_id)
    end = found.effective_end_at
    last_day = local_date(end - timedelta(microseconds=1), shown.timezone)
    return CancelRead(
        subscription=shown,
        cancellation=cancellation_read(found),
        effective_end_at=end,
        message=f"The subscription ends at {utc(end)}, after {last_day.isoformat()} ({shown.timezone}), the last day "
        f"of term {found.effective_term_no}, unless the cancellation is withdrawn before then.",
    )


@router.post(
    "/subscriptions/{subscription_id}/uncancel",
    response_model=UncancelRead,
    responses=problems(409, s409="No cancellation to withdraw, or its effective end has passed."),
)
async def uncancel_subscription(
    subscription_id: uuid.UUID, session: Session, state: State, caller: SubscriptionsWriter
) -> UncancelRead:
    """Withdraw the cancellation before its effective end: the subscription renews again."""
    found, notified = await withdraw_cancellation(session, state, caller, subscription_id)
    return UncancelRead(
        subscription=await _shown(session, caller, subscription_id),
        cancellation=cancellation_read(found),
        workflow_notified=notified,
    )


@router.post(
    "/subscriptions/{subscription_id}/revoke",
    response_model=RevocationRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503, s409="Revoked already, or expired.", s503=S503_START),
)
async def revoke_subscription(
    subscription_id: uuid.UUID,
    session: Session,
    state: State,
    caller: SubscriptionsWriter,
    body: Annotated[RevokeCreate | None, Body()] = None,
) -> RevocationRead:
    """Revoke at once: the subscription, its licenses and tickets end; the software learns at its next refresh."""
    workflow_id = await start_subscription_revocation(
        session, state, caller, subscription_id, (body or RevokeCreate()).reason or ""
    )
    return RevocationRead(workflow_id=workflow_id, status="revocation_started")


@router.post(
    "/subscriptions/{subscription_id}/terms",
    response_model=TermRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": TermRead, "description": "This external_ref was recorded before: the term as it stands."},
        **problems(
            409, s409="Not managed by the ERP, pending or ended; or the external_ref was used with another date."
        ),
    },
)
async def record_erp_term(
    subscription_id: uuid.UUID,
    body: ErpTermCreate,
    session: Session,
    state: State,
    caller: SubscriptionsWriter,
    response: Response,
) -> TermRead:
    """ERP-managed: extend to `valid_through` (a new term) or end the latest term early; once per external_ref."""
    outcome = await erp_terms.record_term(
        session,
        caller,
        state.secret_key,
        subscription_id,
        valid_through=body.valid_through,
        external_ref=body.external_ref,
        now=utcnow(),
    )
    await session.commit()
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    await session.refresh(outcome.term)
    return term_read(outcome.term)
