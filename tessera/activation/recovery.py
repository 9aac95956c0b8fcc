"""Lost devices: an activation's slot freed by a recovery, after the lock period and approvals its process has.

Who may ask: the ticket's holder (the user it is allocated to by name) or an administrator over the ticket's
organization. Anyone else who can see the ticket is refused (403); whoever cannot is told it does not exist (404).
Requests for one activation take turns on its ticket's row, and `activation_recovery.activation_id` is unique:
one activation has one recovery. While it runs, a repeated request gets the same one; once it ended, 409.

Until the `recover` step the activation is untouched (its device keeps refreshing: a device found again before
the lock period ends loses nothing). The step frees the slot as `recovered`, so the ticket can be activated
elsewhere and the lost activation's refresh answers a certificate with status `revoked`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.recovery_models import ActivationRecovery, RecoveryStatus
from tessera.activation.returns import free_activation
from tessera.errors import Conflict, Forbidden, NotFound
from tessera.models import Ticket, utcnow
from tessera.principal import Principal
from tessera.rights import reach
from tessera.rights.locks import lock_rows


class RecoveryEnded(Conflict):
    """This activation's recovery already ended (recovered, rejected or superseded): it is not run twice."""

    code = "recovery-ended"
    title = "Recovery ended"


class ActivationNotActive(Conflict):
    """Only an active activation can be recovered; a returned one has no slot to free."""

    code = "activation-not-active"
    title = "Activation not active"


@dataclass(frozen=True)
class Requested:
    recovery: ActivationRecovery
    created: bool
    """False when the recovery was running already (the caller then starts nothing new)."""


def recovery_workflow_id(activation_id: uuid.UUID) -> str:
    return f"recovery-{activation_id}"


async def visible_activation(session: AsyncSession, principal: Principal, activation_id: uuid.UUID) -> Ticket:
    """The ticket of an activation whose ticket the caller may see; NotFound otherwise."""
    ticket = await session.scalar(
        select(Ticket)
        .join(Activation, Activation.ticket_id == Ticket.id)
        .where(Activation.id == activation_id, reach.ticket_filter(principal))
    )
    if ticket is None:
        raise NotFound(f"no activation {activation_id}")
    return ticket


async def _authorize(session: AsyncSession, principal: Principal, ticket: Ticket) -> None:
    if ticket.allocated_user_id is not None and ticket.allocated_user_id == principal.user_id:
        return
    if principal.vendor_admin or reach.administers_path(
        principal, await reach.path_ids(session, ticket.organization_id)
    ):
        return
    raise Forbidden("only the ticket's holder or an administrator over its organization may recover its activation")


async def request_recovery(session: AsyncSession, principal: Principal, activation_id: uuid.UUID) -> Requested:
    """The running recovery of this activation, or a new one; the caller commits and then starts its workflow."""
    ticket = await visible_activation(session, principal, activation_id)
    await _authorize(session, principal, ticket)
    await lock_rows(session, Ticket.__table__, [ticket.id])  # type: ignore[arg-type]
    existing = await session.scalar(
        select(ActivationRecovery)
        .where(ActivationRecovery.activation_id == activation_id)
        .execution_options(populate_existing=True)
    )
    if existing is not None:
        if existing.status != RecoveryStatus.pending:
            raise RecoveryEnded(f"the recovery of this activation ended: {existing.status}")
        return Requested(existing, created=False)
    status = await session.scalar(
        select(Activation.status).where(Activation.id == activation_id).execution_options(populate_existing=True)
    )
    if status != ActivationStatus.active:
        raise ActivationNotActive(f"this activation is {status}: there is no slot to recover")
    recovery = ActivationRecovery(
        activation_id=activation_id,
        ticket_id=ticket.id,
        workflow_id=recovery_workflow_id(activation_id),
        status=RecoveryStatus.pending,
        requested_by_user_id=principal.user_id,
        requested_by_api_key_id=principal.api_key_id,
    )
    session.add(recovery)
    await session.flush()
    return Requested(recovery, created=True)


async def _locked_recovery(session: AsyncSession, recovery_id: uuid.UUID) -> ActivationRecovery:
    recovery = await session.get(ActivationRecovery, recovery_id)
    if recovery is None:
        raise NotFound(f"no recovery {recovery_id}")
    await lock_rows(session, Ticket.__table__, [recovery.ticket_id])  # type: ignore[arg-type]
    await session.refresh(recovery)
    return recovery


async def apply_recovery(session: AsyncSession, recovery_id: uuid.UUID, at: datetime | None = None) -> str:
    """The `recover` step: free the slot as `recovered`. Idempotent: a repeat answers the status it left."""
    recovery = await _locked_recovery(session, recovery_id)
    if recovery.status != RecoveryStatus.pending:
        return recovery.status
    now = at or utcnow()
    freed = await free_activation(session, recovery.activation_id, status=ActivationStatus.recovered, now=now)
    recovery.status = RecoveryStatus.recovered if freed else RecoveryStatus.superseded
    recovery.ended_at = now
    await session.flush()
    return recovery.status


async def reject_recovery(session: AsyncSession, recovery_id: uuid.UUID, at: datetime | None = None) -> str:
    """A rejected approval: the recovery ends, the activation stays as it was. Idempotent."""
    recovery = await _locked_recovery(session, recovery_id)
    if recovery.status == RecoveryStatus.pending:
        recovery.status = RecoveryStatus.rejected
        recovery.ended_at = at or utcnow()
        await session.flush()
    return recovery.status


async def recovery_of(session: AsyncSession, principal: Principal, activation_id: uuid.UUID) -> ActivationRecovery:
    """The recovery of an activation the caller may see (for decisions and reads); NotFound otherwise."""
    await visible_activation(session, principal, activation_id)
    recovery = await session.scalar(select(ActivationRecovery).where(ActivationRecovery.activation_id == activation_id))
    if recovery is None:
        raise NotFound(f"activation {activation_id} has no recovery")
    return recovery
