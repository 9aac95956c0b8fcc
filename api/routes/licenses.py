"""Licenses within the caller's reach, each with its ticket (without the code)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, status

from api.deps import Cursor, Limit, Session, State, scoped
from api.openapi import problems
from api.routes.orders import ticket_summary
from api.routes.subscription_decisions import S409_DECIDE, decide
from api.routes.subscriptions import S503_START, run_workflow_call
from api.schemas.common import Page
from api.schemas.licenses import LicenseRead
from api.schemas.subscriptions import RevocationRead, RevokeCreate, StepDecisionCreate, StepDecisionRead
from tessera.models import License, LicenseStatus, Ticket
from tessera.orders import licenses
from tessera.principal import Principal
from tessera.subscriptions import requests
from workflows import subscription_ops

router = APIRouter(tags=["licenses"])

LicensesReader = Annotated[Principal, Depends(scoped("licenses:read"))]
LicensesWriter = Annotated[Principal, Depends(scoped("licenses:write"))]
Decision = Annotated[StepDecisionCreate | None, Body(description="An optional comment, kept in the trail.")]


def license_read(license: License, product_code: str, ticket: Ticket | None) -> LicenseRead:
    return LicenseRead(
        id=license.id,
        order_id=license.order_id,
        line_no=license.line_no,
        product=product_code,
        organization_id=license.organization_id,
        fields=license.fields,
        modules=license.modules,
        status=license.status,
        expires_at=license.expires_at,
        ticket=ticket_summary(ticket),
        created_at=license.created_at,
        updated_at=license.updated_at,
    )


@router.get("/licenses", response_model=Page[LicenseRead])
async def list_licenses(
    session: Session,
    caller: LicensesReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[LicenseStatus | None, Query(description="Only licenses with this status.")] = None,
    order_id: Annotated[uuid.UUID | None, Query(description="Only the licenses of this order.")] = None,
) -> Page[LicenseRead]:
    """List the licenses the caller may see: an administrator's subtree, a member's visible tickets."""
    page = await licenses.list_licenses(session, caller, limit=limit, cursor=cursor, status=status, order_id=order_id)
    return Page(items=[license_read(*row) for row in page.items], next_cursor=page.next_cursor)


@router.get("/licenses/{license_id}", response_model=LicenseRead)
async def get_license(license_id: uuid.UUID, session: Session, caller: LicensesReader) -> LicenseRead:
    """Show one license the caller may see."""
    return license_read(*await licenses.visible_license(session, caller, license_id))


@router.post(
    "/licenses/{license_id}/revoke",
    response_model=RevocationRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(
        409,
        503,
        s409="Revoked already, or the license belongs to a subscription (revoke the subscription it names).",
        s503=S503_START,
    ),
)
async def revoke_license(
    license_id: uuid.UUID,
    session: Session,
    state: State,
    caller: LicensesWriter,
    body: Annotated[RevokeCreate | None, Body()] = None,
) -> RevocationRead:
    """Revoke a license (perpetual, time-limited or trial) and its ticket; the software learns at its next refresh."""
    target = await requests.check_license_revocable(session, caller, license_id)
    await session.commit()
    workflow_id = await run_workflow_call(
        subscription_ops.start_revocation_workflow(
            state.temporal,
            state.settings,
            session,
            target="license",
            target_id=target.target_id,
            requester_user_id=caller.user_id,
            reason=(body or RevokeCreate()).reason or "",
        )
    )
    return RevocationRead(workflow_id=workflow_id, status="revocation_started")


DECISION = problems(409, 503, s409=S409_DECIDE)


@router.post("/licenses/{license_id}/revocation/approve", response_model=StepDecisionRead, responses=DECISION)
async def approve_license_revocation(
    license_id: uuid.UUID, session: Session, state: State, caller: LicensesWriter, body: Decision = None
) -> StepDecisionRead:
    """Approve the license's revocation waiting at an approval step (only its approvers)."""
    await requests.license_of_revocation(session, caller, license_id)
    return await decide(session, state, caller, requests.revocation_workflow_id(license_id), body, approve=True)


@router.post("/licenses/{license_id}/revocation/reject", response_model=StepDecisionRead, responses=DECISION)
async def reject_license_revocation(
    license_id: uuid.UUID, session: Session, state: State, caller: LicensesWriter, body: Decision = None
) -> StepDecisionRead:
    """Reject the license's revocation waiting at an approval step: the license stays as it is."""
    await requests.license_of_revocation(session, caller, license_id)
    return await decide(session, state, caller, requests.revocation_workflow_id(license_id), body, approve=False)
