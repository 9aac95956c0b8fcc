"""Returning an activation: the slot is freed so the ticket can move to another container, a limited number of
times per period (`TESSERA_ACTIVATION_MOVES` per `TESSERA_ACTIVATION_MOVES_PERIOD`, counted per ticket).

A return is counted as a move whether the device gives its license back (with its secret) or an administrator
does it: either way the license changes container. The ticket's row is locked before the returns in the period
are counted, so concurrent returns never exceed the limit. `free_activation` frees a slot without counting it,
for what is not a move by the license's holder (a lost device recovered, a cloud container deleted).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation import secrets as activation_secrets
from tessera.activation.errors import ActivationNotFound, ActivationReturned, MovesExhausted
from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.runtime import ActivationRuntime
from tessera.errors import NotFound
from tessera.models import License, Permission, Product, Ticket, TicketStatus, utcnow
from tessera.principal import Principal
from tessera.rights import acting
from tessera.rights.locks import lock_rows


@dataclass(frozen=True)
class Returned:
    activation_id: uuid.UUID
    returned_at: datetime
    moves_left: int
    """Further moves the ticket has within the current period."""


async def free_activation(
    session: AsyncSession,
    activation_id: uuid.UUID,
    *,
    status: ActivationStatus = ActivationStatus.returned,
    now: datetime | None = None,
    by: Principal | None = None,
) -> bool:
    """Free an active activation's slot (as `status`); the ticket becomes `returned` when none is active. False if
    it was not active (a repeat changes nothing). Lock the ticket's row first (`lock_rows`) when counting matters."""
    now = now or utcnow()
    changed = await session.execute(
        update(Activation)
        .where(Activation.id == activation_id, Activation.status == ActivationStatus.active)
        .values(
            status=status,
            returned_at=now,
            updated_at=now,
            returned_by_user_id=by.user_id if by else None,
            returned_by_api_key_id=by.api_key_id if by else None,
        )
        .returning(Activation.ticket_id)
        .execution_options(synchronize_session=False)
    )
    ticket_id = changed.scalar()
    if ticket_id is None:
        return False
    still_active = await session.scalar(
        select(Activation.id)
        .where(Activation.ticket_id == ticket_id, Activation.status == ActivationStatus.active)
        .limit(1)
    )
    if still_active is None:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.activated)
            .values(status=TicketStatus.returned, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return True


async def _authorize_return(
    session: AsyncSession,
    runtime: ActivationRuntime,
    activation: Activation,
    secret: str | None,
    principal: Principal | None,
    client: str,
) -> None:
    if secret is not None:
        if not activation_secrets.secret_matches(runtime.secret_key, secret, activation.secret_hash):
            await runtime.limiter.failed(client)
            raise ActivationNotFound
        return
    if principal is None:
        raise ActivationNotFound
    ticket = await session.get_one(Ticket, activation.ticket_id)
    group_id = await session.scalar(
        select(Product.group_id).join(License, License.product_id == Product.id).where(License.id == ticket.license_id)
    )
    assert group_id is not None
    try:
        # An administrator who may hand the ticket out may also take it back from a container.
        await acting.authorize(session, principal, Permission.allocate, group_id, ticket.organization_id)
    except NotFound:
        raise ActivationNotFound from None


async def return_activation(
    session: AsyncSession,
    runtime: ActivationRuntime,
    activation_id: uuid.UUID,
    *,
    secret: str | None,
    principal: Principal | None,
    client: str,
    now: datetime | None = None,
    authorized_by: Principal | None = None,
) -> Returned:
    """Give the activation's license back to its ticket, by its secret or by an administrator over the ticket.

    `authorized_by`: someone whose right to take this activation back the caller has checked (the owner of its
    cloud container, see tessera.cloud.holders); recorded as who returned it.
    """
    now = now or utcnow()
    await runtime.limiter.check(client)
    ticket_id = await session.scalar(select(Activation.ticket_id).where(Activation.id == activation_id))
    if ticket_id is None:
        await runtime.limiter.failed(client)
        raise ActivationNotFound
    await lock_rows(session, Ticket.__table__, [ticket_id])  # type: ignore[arg-type]
    activation = await session.get_one(Activation, activation_id, populate_existing=True)
    if authorized_by is None:
        await _authorize_return(session, runtime, activation, secret, principal, client)
    if activation.status != ActivationStatus.active:
        raise ActivationReturned
    since = now - runtime.moves_period
    moves = await session.execute(
        select(func.count(), func.min(Activation.returned_at)).where(
            Activation.ticket_id == ticket_id,
            Activation.status == ActivationStatus.returned,
            Activation.returned_at > since,
        )
    )
    count, oldest = moves.one()
    if count >= runtime.moves:
        wait = (oldest + runtime.moves_period - now).total_seconds() if oldest else runtime.moves_period.total_seconds()
        raise MovesExhausted(runtime.moves, runtime.moves_period.total_seconds() / 86400, max(1, math.ceil(wait)))
    by = authorized_by or (principal if secret is None else None)
    await free_activation(session, activation_id, now=now, by=by)
    return Returned(activation_id=activation_id, returned_at=now, moves_left=runtime.moves - count - 1)
