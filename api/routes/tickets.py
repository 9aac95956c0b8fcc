"""Tickets: exactly what the caller may see, re-allocation by entitled administrators, lookup by code."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Cursor, Limit, Session, State, TicketsReader, TicketsWriter
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.tickets import TicketCode, TicketLookup, TicketRead, TicketUpdate
from tessera.licenses import tickets

router = APIRouter(tags=["tickets"])


@router.get("/tickets", response_model=Page[TicketRead])
async def list_tickets(
    session: Session,
    caller: TicketsReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    mine: Annotated[bool, Query(description="Only tickets the caller can activate itself.")] = False,
    unallocated: Annotated[
        bool, Query(description="Only tickets allocated to no one by name, e.g. given back by someone who left.")
    ] = False,
) -> Page[TicketRead]:
    """List the tickets the caller may see, or with `mine=true` those it can activate."""
    page = await tickets.list_tickets(session, caller, limit=limit, cursor=cursor, mine=mine, unallocated=unallocated)
    return Page(
        items=[TicketRead.model_validate(t, from_attributes=True) for t in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/tickets/lookup",
    response_model=TicketRead,
    responses=problems(404, s404="No ticket with this code that you may see."),
)
async def lookup_ticket(body: TicketLookup, session: Session, state: State, caller: TicketsReader) -> TicketRead:
    """Find a ticket by its code, sent in the body because codes are secrets."""
    ticket = await tickets.lookup_ticket(session, state.secret_key, caller, body.code)
    return TicketRead.model_validate(ticket, from_attributes=True)


@router.get("/tickets/{ticket_id}", response_model=TicketRead)
async def get_ticket(ticket_id: uuid.UUID, session: Session, caller: TicketsReader) -> TicketRead:
    """Show one ticket the caller may see."""
    return TicketRead.model_validate(await tickets.visible_ticket(session, caller, ticket_id), from_attributes=True)


@router.patch("/tickets/{ticket_id}", response_model=TicketRead, responses=problems(409, s409="The ticket is revoked."))
async def update_ticket(
    ticket_id: uuid.UUID, body: TicketUpdate, session: Session, caller: TicketsWriter
) -> TicketRead:
    """Re-allocate a ticket or change its visibility (administrators with the allocate permission)."""
    ticket = await tickets.update_ticket(session, caller, ticket_id, body.changes())
    return TicketRead.model_validate(ticket, from_attributes=True)


@router.post("/tickets/{ticket_id}/code", response_model=TicketCode)
async def reveal_ticket_code(
    ticket_id: uuid.UUID, session: Session, state: State, caller: TicketsReader, response: Response
) -> TicketCode:
    """Show a ticket's code again, to whoever may activate it or allocates it."""
    response.headers["Cache-Control"] = "no-store"
    return TicketCode(code=await tickets.reveal_code(session, state.secret_key, caller, ticket_id))
