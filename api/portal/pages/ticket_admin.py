"""The ticket rows of a group page: re-allocation, visibility, and showing a code again (tessera.licenses.tickets)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.pages.organizations import group_context, principal_of, render_group
from api.portal.render import field_errors, redirect
from api.portal.routing import PortalRoute
from tessera.errors import Conflict, FieldIssue, InvalidInput, NotFound
from tessera.licenses import tickets
from tessera.models import Ticket, Visibility

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

ORGANIZATION = "organization"
"""The "Allocate to" value that gives a ticket to the organization itself rather than a person."""


async def _ticket_of(page: Page, session: AsyncSession, organization_id: uuid.UUID, ticket_id: uuid.UUID) -> Ticket:
    """A ticket the viewer sees, and only on its own organization's page (anything else: no such ticket here)."""
    ticket = await tickets.visible_ticket(session, principal_of(page), ticket_id)
    if ticket.organization_id != organization_id:
        raise NotFound(f"no ticket {ticket_id} in this organization")
    return ticket


def _allocation(value: str) -> uuid.UUID | None:
    if value == ORGANIZATION:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(
            "choose the organization or one of its members",
            issues=[FieldIssue("allocated_user_id", "choose the organization or one of its members")],
        ) from None


def _visibility(value: str) -> Visibility:
    try:
        return Visibility(value)
    except ValueError:
        raise InvalidInput(
            "choose all_members or admins_only", issues=[FieldIssue("visibility", "choose all_members or admins_only")]
        ) from None


@router.post("/organizations/{organization_id}/tickets/{ticket_id}")
async def save_ticket(
    organization_id: uuid.UUID, ticket_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Allocate a ticket to the organization or one of its members, and set who sees it."""
    await _ticket_of(page, session, organization_id, ticket_id)
    try:
        changes = {
            "organization_id": organization_id,
            "allocated_user_id": _allocation(text(form, "allocate_to", max_length=64)),
            "visibility": _visibility(text(form, "visibility", max_length=64)),
        }
        await tickets.update_ticket(session, principal_of(page), ticket_id, changes)
    except (InvalidInput, Conflict) as error:
        await session.rollback()
        context = await group_context(page, session, organization_id)
        problems = field_errors(error.issues) or {"form": error.detail}
        for row in context["tickets"]:
            if row.ticket.id == ticket_id:
                # Both fields name the one "Allocate to" choice on the page.
                row.error = {
                    "allocate_to" if name.startswith("allocated") or name == "organization_id" else name: m
                    for name, m in problems.items()
                }
        return render_group(page, context, status=error.status)
    return redirect(f"/organizations/{organization_id}?done=ticket#ticket-{ticket_id}")


@router.post("/organizations/{organization_id}/tickets/{ticket_id}/code")
async def show_code(
    organization_id: uuid.UUID, ticket_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Show a ticket's code again, on the group page only (never in a URL; the page is not cached)."""
    del form  # checked for its CSRF token only
    await _ticket_of(page, session, organization_id, ticket_id)
    code = await tickets.reveal_code(session, page.state.secret_key, principal_of(page), ticket_id)
    context = await group_context(page, session, organization_id)
    for row in context["tickets"]:
        if row.ticket.id == ticket_id:
            row.code = code
    response = render_group(page, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
