"""The outbox: notifications and published events, for the administrators of the organizations they concern."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Cursor, Limit, Session, scoped
from api.schemas.common import Page
from api.schemas.events import EventRead
from tessera.models import EventKind
from tessera.orders import events
from tessera.principal import Principal

router = APIRouter(tags=["events"])

EventsReader = Annotated[Principal, Depends(scoped("webhooks:read"))]


@router.get("/events", response_model=Page[EventRead])
async def list_events(
    session: Session,
    caller: EventsReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    order_id: Annotated[uuid.UUID | None, Query(description="Only the events of this order.")] = None,
    kind: Annotated[EventKind | None, Query(description="notification or webhook.")] = None,
) -> Page[EventRead]:
    """List outbox events of the organizations the caller administers (vendor admins: all), newest first.

    Recipients are listed only where the caller may see those people; the others are counted.
    """
    page = await events.list_events(session, caller, limit=limit, cursor=cursor, order_id=order_id, kind=kind)
    recipients = await events.visible_recipients(session, caller, page.items)
    items = [
        EventRead.model_validate(event, from_attributes=True).model_copy(
            update={"recipients": recipients[event.id][0], "recipients_hidden": recipients[event.id][1]}
        )
        for event in page.items
    ]
    return Page(items=items, next_cursor=page.next_cursor)
