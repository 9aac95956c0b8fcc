"""Tickets: one per license, found by id within reach or by code, re-allocated by entitled administrators.

Until orders land, `create_ticket` is how tickets come to be (tests call it; the order workflow will too).

Leaving an organization takes its tickets away: what was allocated by name to someone who leaves goes back to
the organization as `admins_only`, recorded in `ticket_event`, and is listed by `unallocated=True` for its
admins to hand out again. Allocation to a person and their removal take turns on the membership, so a ticket
is never allocated to someone whose membership was just removed.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput, NotFound
from tessera.licenses import codes
from tessera.models import (
    License,
    Membership,
    Organization,
    Permission,
    Product,
    Ticket,
    TicketAction,
    TicketEvent,
    TicketStatus,
    User,
    Visibility,
)
from tessera.pagination import PageOf, after_id, page_from
from tessera.principal import Principal
from tessera.rights import acting, reach
from tessera.rights.locks import is_sqlite, lock_rows


async def create_ticket(
    session: AsyncSession,
    secret_key: bytes,
    license: License,
    *,
    organization_id: uuid.UUID | None = None,
    allocated_user_id: uuid.UUID | None = None,
    visibility: Visibility = Visibility.all_members,
) -> tuple[Ticket, str]:
    """The ticket of `license` and its code, which the caller hands to whoever activates (never logged)."""
    code = codes.generate_code()
    ticket_id = uuid.uuid4()
    ticket = Ticket(
        id=ticket_id,
        license_id=license.id,
        code_hash=codes.code_hash(secret_key, code),
        code_encrypted=codes.encrypt_code(secret_key, ticket_id, code),
        organization_id=organization_id or license.organization_id,
        allocated_user_id=None,
        visibility=visibility,
        status=TicketStatus.available,
    )
    session.add(ticket)
    await hand_to(session, ticket, allocated_user_id)
    await session.flush()
    return ticket, code


_BELONGS = "tessera.tickets.belongs"
LEFT_BEFORE = "the person it was ordered for had left the organization"


async def _still_belongs(session: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
    """Whether the user is a member of the organization, of one above it (e.g. who ordered) or of one below it."""
    # Asked once per ticket of an order: the answer holds for the transaction (the rows stay locked), so keep it.
    transaction = session.get_transaction()
    cached = session.info.get(_BELONGS)
    if cached is None or cached[0] is not transaction:
        cached = session.info[_BELONGS] = (transaction, {})
    known: dict[tuple[uuid.UUID, uuid.UUID], bool] = cached[1]
    if (user_id, organization_id) in known:
        return known[(user_id, organization_id)]
    path = await reach.path_ids(session, organization_id)
    query = select(Membership.user_id).where(
        Membership.user_id == user_id,
        or_(Membership.organization_id.in_(reach.subtree_ids([organization_id])), Membership.organization_id.in_(path)),
    )
    if is_sqlite(session):
        await lock_rows(session, Organization.__table__, [organization_id])  # type: ignore[arg-type]
    else:
        # Held until commit, so a removal of these memberships waits and then takes the ticket back.
        query = query.with_for_update(read=True)
    known[(user_id, organization_id)] = (await session.execute(query.limit(1))).first() is not None
    return known[(user_id, organization_id)]


async def hand_to(session: AsyncSession, ticket: Ticket, user_id: uuid.UUID | None) -> None:
    """Allocate by name as an order asked — unless that person has left meanwhile: then to the organization.

    The order workflow allocates long after the order was accepted; a holder who left in between must not
    get the ticket, so it goes to the organization `admins_only`, recorded like a ticket returned on leaving.
    The caller flushes.
    """
    if user_id is None or await _still_belongs(session, user_id, ticket.organization_id):
        ticket.allocated_user_id = user_id
        return
    _give_back(session, ticket, user_id, LEFT_BEFORE)


def _give_back(
    session: AsyncSession, ticket: Ticket, user_id: uuid.UUID, reason: str, by: Principal | None = None
) -> None:
    """The ticket goes to its organization, for its admins, instead of `user_id`; recorded."""
    ticket.allocated_user_id = None
    ticket.visibility = Visibility.admins_only
    session.add(_returned_event(ticket.id, ticket.organization_id, user_id, reason, by))


def _returned_event(
    ticket_id: uuid.UUID, organization_id: uuid.UUID, user_id: uuid.UUID, reason: str, by: Principal | None = None
) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket_id,
        organization_id=organization_id,
        action=TicketAction.returned,
        from_user_id=user_id,
        actor_user_id=by.user_id if by else None,
        actor_api_key_id=by.api_key_id if by else None,
        reason=reason,
    )


async def list_tickets(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    mine: bool = False,
    unallocated: bool = False,
) -> PageOf[Ticket]:
    rule = reach.mine_filter(principal) if mine else reach.ticket_filter(principal)
    query = select(Ticket).where(rule).order_by(Ticket.id)
    if unallocated:
        query = query.where(Ticket.allocated_user_id.is_(None))
    after = after_id(cursor, "tickets")
    if after is not None:
        query = query.where(Ticket.id > after)
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda ticket: ticket.id, scope="tickets")


async def visible_ticket(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID) -> Ticket:
    ticket = await session.scalar(
        select(Ticket)
        .where(Ticket.id == ticket_id, reach.ticket_filter(principal))
        .execution_options(populate_existing=True)
    )
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


async def lookup_ticket(session: AsyncSession, secret_key: bytes, principal: Principal, code: str) -> Ticket:
    """The ticket with this code if the caller may see it; unknown and foreign codes get the same answer."""
    ticket = await session.scalar(
        select(Ticket).where(Ticket.code_hash.in_(codes.code_hashes(secret_key, code)), reach.ticket_filter(principal))
    )
    if ticket is None:
        raise NotFound("no ticket with this code")
    return ticket


async def _license_of(session: AsyncSession, ticket: Ticket) -> tuple[License, uuid.UUID]:
    row = (
        await session.execute(
            select(License, Product.group_id)
            .join(Product, Product.id == License.product_id)
            .where(License.id == ticket.license_id)
        )
    ).one()
    return row[0], row[1]


async def _may_allocate(session: AsyncSession, principal: Principal, group_id: uuid.UUID, org: uuid.UUID) -> None:
    try:
        await acting.authorize(session, principal, Permission.allocate, group_id, org)
    except NotFound:
        # The caller sees the ticket (e.g. allocated to it by name) but not its organization: visible, not allowed.
        raise Forbidden("only administrators with the allocate permission re-allocate tickets") from None


async def update_ticket(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, changes: dict[str, Any]
) -> Ticket:
    """Re-allocate to a user or an organization within the license's organization, or change visibility."""
    await lock_rows(session, Ticket.__table__, [ticket_id])  # type: ignore[arg-type]
    ticket = await visible_ticket(session, principal, ticket_id)
    license, group_id = await _license_of(session, ticket)
    await _may_allocate(session, principal, group_id, ticket.organization_id)
    if ticket.status == TicketStatus.revoked:
        raise Conflict("a revoked ticket cannot be re-allocated")
    within = reach.subtree_ids([license.organization_id])
    if "organization_id" in changes and changes["organization_id"] != ticket.organization_id:
        target: uuid.UUID | None = changes["organization_id"]
        path = await reach.path_ids(session, target) if target is not None else []
        if target is None or license.organization_id not in path or not reach.sees_path(principal, path):
            raise InvalidInput(
                "a ticket moves only within its license's organization",
                issues=[FieldIssue("organization_id", "not an organization within the license's organization")],
            )
        await _may_allocate(session, principal, group_id, target)
        ticket.organization_id = target
    if "allocated_user_id" in changes:
        user_id: uuid.UUID | None = changes["allocated_user_id"]
        if user_id is not None:
            query = (
                select(Membership.user_id)
                .join(User, Membership.user_id == User.id)
                .where(User.id == user_id, Membership.organization_id.in_(within), reach.user_filter(principal))
            )
            if not is_sqlite(session):
                # Held until commit: a removal of these memberships waits, and then takes the ticket back.
                query = query.with_for_update(read=True, of=Membership)
            member = (await session.execute(query)).first()
            if member is None:
                raise InvalidInput(
                    "tickets are allocated to members of the license's organization",
                    issues=[FieldIssue("allocated_user_id", "no such member of the license's organization")],
                )
        ticket.allocated_user_id = user_id
    if changes.get("visibility") is not None:
        ticket.visibility = Visibility(changes["visibility"])
    await session.flush()
    return ticket


async def reveal_code(session: AsyncSession, secret_key: bytes, principal: Principal, ticket_id: uuid.UUID) -> str:
    """The code again, for whoever may activate the ticket or administers its allocation."""
    ticket = await visible_ticket(session, principal, ticket_id)
    activatable = await session.scalar(select(Ticket.id).where(Ticket.id == ticket.id, reach.mine_filter(principal)))
    if activatable is None:
        _license, group_id = await _license_of(session, ticket)
        await _may_allocate(session, principal, group_id, ticket.organization_id)
    return codes.decrypt_code(secret_key, ticket.id, ticket.code_encrypted)


def returned_ticket_ids_query() -> Select[uuid.UUID]:
    """Tickets given back to their organization because their holder left: they stay admins-only."""
    return select(TicketEvent.ticket_id).where(TicketEvent.action == TicketAction.returned)


async def holder_has_left(session: AsyncSession, user_id: uuid.UUID | None, organization_id: uuid.UUID) -> bool:
    """Whether tickets meant for `user_id` by name must go to the organization instead: the person left it."""
    return user_id is not None and not await _still_belongs(session, user_id, organization_id)


async def record_returned(
    session: AsyncSession, ticket_ids: Select[uuid.UUID], user_id: uuid.UUID, *, reason: str
) -> None:
    """Record, once per ticket, that the tickets selected went to their organization instead of `user_id`."""
    missing = (
        await session.execute(
            select(Ticket.id, Ticket.organization_id).where(
                Ticket.id.in_(ticket_ids), Ticket.id.not_in(returned_ticket_ids_query())
            )
        )
    ).all()
    session.add_all(_returned_event(ticket_id, org_id, user_id, reason) for ticket_id, org_id in missing)
    await session.flush()


async def return_tickets_of_leaver(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID
) -> list[Ticket]:
    """Give back to their organizations the tickets `user_id` held by name, now that they left `organization_id`.

    The organization's own tickets always go back. Those of organizations below and above it go back once the
    user belongs to none of the organizations on that ticket's line any more (its own, those above it, those
    below it). Each goes back `admins_only` and is recorded. Call after the membership is gone.
    """
    session.info.pop(_BELONGS, None)  # memberships just changed
    path = await reach.path_ids(session, organization_id)
    held = (
        await session.scalars(
            select(Ticket)
            .where(
                Ticket.allocated_user_id == user_id,
                or_(Ticket.organization_id.in_(reach.subtree_ids([organization_id])), Ticket.organization_id.in_(path)),
            )
            .order_by(Ticket.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    returned = [
        ticket
        for ticket in held
        if ticket.organization_id == organization_id
        or not await _still_belongs(session, user_id, ticket.organization_id)
    ]
    for ticket in returned:
        _give_back(session, ticket, user_id, "its holder left the organization", principal)
    await session.flush()
    return returned
