"""The outbox as its readers see it: events of the organizations they administer (vendor admins: all)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.models import Event, User
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach


def event_filter(principal: Principal) -> ColumnElement[bool]:
    """Messages name approvers and requesters: only administrators read them; members see none."""
    if principal.vendor_admin:
        return true()
    if not principal.admin_of:
        return false()
    return Event.organization_id.in_(reach.subtree_ids(principal.admin_of))


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    order_id: uuid.UUID | None = None,
    kind: str | None = None,
) -> PageOf[Event]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Event).where(event_filter(principal)).order_by(Event.created_at.desc(), Event.id.desc())
    if order_id is not None:
        query = query.where(Event.order_id == order_id)
    if kind is not None:
        query = query.where(Event.kind == kind)
    query = query.where(newest_first_after(cursor, Event.created_at, Event.id, "events"))
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda event: (event.created_at, event.id), scope="events")


async def visible_recipients(
    session: AsyncSession, principal: Principal, events: Sequence[Event]
) -> dict[uuid.UUID, tuple[list[str], int]]:
    """Per event: the addresses the caller may see, and how many it may not.

    An address is shown only when it belongs to a user within the caller's reach (itself, members of what it
    administers); approvers above the caller and addresses written into workflows.yaml are only counted.
    Vendor administrators see every address.
    """
    if principal.vendor_admin:
        return {event.id: (list(event.recipients), 0) for event in events}
    wanted = {str(address).lower() for event in events for address in event.recipients}
    known: set[str] = set()
    if wanted:
        rows = await session.scalars(select(User.email).where(User.email.in_(wanted), reach.user_filter(principal)))
        known = {email.lower() for email in rows.all()}
    shown: dict[uuid.UUID, tuple[list[str], int]] = {}
    for event in events:
        visible = [str(address) for address in event.recipients if str(address).lower() in known]
        shown[event.id] = (visible, len(event.recipients) - len(visible))
    return shown
