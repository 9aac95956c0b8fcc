"""Activating a ticket into a container: the checks, the slot, the first activation's effects, the certificate.

The ticket's row is locked before its activations are counted, so concurrent activations of one ticket take
turns and never exceed `max_activations`; the partial unique index on (ticket, container) among active rows
keeps one activation per container even so. Activating the same ticket into the same container again returns
that activation with a new secret (the old one stops working: whoever runs the activation again has lost it,
and holds the ticket code anyway) and a new certificate, using no second slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation import handover
from tessera.activation import secrets as activation_secrets
from tessera.activation.certificates import (
    LicenseFacts,
    certificate_exp,
    effective_status,
    license_claims,
    sign_certificate,
)
from tessera.activation.containers import AnyContainer, BindingContext, BoundContainer, bind_container
from tessera.activation.errors import (
    ActivationReturned,
    ActivationsExhausted,
    ContainerKindNotAllowed,
    LicenseExpired,
    OfflineReplay,
    OfflineSeqUnknown,
    TicketNotFound,
    TicketRevoked,
)
from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.runtime import ActivationRuntime
from tessera.licenses import codes
from tessera.licenses.expiry import license_expiry
from tessera.models import (
    License,
    LicenseStatus,
    Product,
    ProductKind,
    Subscription,
    SubscriptionStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from tessera.principal import Principal
from tessera.rights import reach
from tessera.rights.locks import lock_rows

_activation_table: Table = Activation.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Activated:
    activation_id: uuid.UUID
    secret: str
    license_id: uuid.UUID
    certificate: str
    seq: int
    created: bool
    """False when the ticket was active in this container already (same activation, new secret)."""
    pending_subscription_id: uuid.UUID | None
    """A pending subscription this activation starts (recorded in the transaction): signal its workflow at once
    after the commit; the worker's relay sends what that signal missed."""
    activated_at: datetime


async def find_ticket_id(
    session: AsyncSession, runtime: ActivationRuntime, code: str, client: str, principal: Principal | None
) -> uuid.UUID:
    """The ticket of `code` (within the caller's reach when an API key came along); failures are counted."""
    hashes = codes.code_hashes(runtime.secret_key, code)  # InvalidInput naming `code` when it is no code at all
    await runtime.limiter.check(client)
    query = select(Ticket.id).where(Ticket.code_hash.in_(hashes))
    if principal is not None:
        query = query.where(reach.ticket_filter(principal))
    ticket_id = await session.scalar(query)
    if ticket_id is None:
        await runtime.limiter.failed(client)
        raise TicketNotFound
    return ticket_id


def facts_of(license: License, product_code: str, ticket_status: str) -> LicenseFacts:
    return LicenseFacts(
        license_id=license.id,
        product_code=product_code,
        modules=list(license.modules),
        fields=dict(license.fields),
        license_status=license.status,
        ticket_status=ticket_status,
        expires_at=license.expires_at,
    )


async def issue_certificate(
    runtime: ActivationRuntime,
    facts: LicenseFacts,
    *,
    activation_id: uuid.UUID,
    container_id: str,
    seq: int,
    now: datetime,
    nonce: str | None = None,
) -> str:
    """A signed certificate for an activation whose `seq` the caller has just raised (under its row's lock).

    Call `runtime.keys.signer(now + runtime.certificate_ttl)` before the request's first statement (SigningKeys).
    """
    exp = certificate_exp(facts, now, runtime.certificate_ttl)
    signer = await runtime.keys.signer(exp)
    claims = license_claims(
        facts,
        issuer=runtime.issuer,
        audience=container_id,
        activation_id=activation_id,
        seq=seq,
        now=now,
        exp=exp,
        nonce=nonce,
    )
    return sign_certificate(signer, claims)


async def next_seq(
    session: AsyncSession, activation_id: uuid.UUID, now: datetime, *, expected: int | None = None
) -> int | None:
    """Raise the activation's certificate counter and return it; None if it is no longer active or recovered, or
    (with `expected`) if the counter is no longer `expected`: another certificate was issued meanwhile."""
    where = [
        _activation_table.c.id == activation_id,
        _activation_table.c.status.in_([ActivationStatus.active, ActivationStatus.recovered]),
    ]
    if expected is not None:
        where.append(_activation_table.c.seq == expected)
    seq = await session.scalar(
        update(_activation_table)
        .where(*where)
        .values(seq=_activation_table.c.seq + 1, refreshed_at=now, updated_at=now)
        .returning(_activation_table.c.seq)
    )
    return None if seq is None else int(seq)


def check_held_seq(held: int, issued: int) -> None:
    """A device's request must name the newest certificate issued to it: older is a replay."""
    if held < issued:
        raise OfflineReplay(held, issued)
    if held > issued:
        raise OfflineSeqUnknown(held, issued)


async def activate(
    session: AsyncSession,
    runtime: ActivationRuntime,
    code: str,
    container: AnyContainer,
    *,
    client: str,
    principal: Principal | None = None,
    now: datetime | None = None,
    nonce: str | None = None,
    expected_seq: int | None = None,
) -> Activated:
    """Turn the ticket of `code` into a license on `container`; the caller commits, then signals (see Activated).

    `nonce` binds the certificate to an offline request; `expected_seq`, the `seq` the device says it holds, must
    be the activation's when the ticket is active in this container already (else OfflineReplay).
    """
    now = now or utcnow()
    # The key is read, and its signed_until raised, in transactions of its own before this one writes.
    await runtime.keys.signer(now + runtime.certificate_ttl)
    ticket_id = await find_ticket_id(session, runtime, code, client, principal)

    async def bind(bind_session: AsyncSession, context: BindingContext) -> BoundContainer:
        return await bind_container(bind_session, container, context)

    return await activate_ticket(
        session,
        runtime,
        ticket_id,
        container.kind,
        bind,
        client=client,
        now=now,
        nonce=nonce,
        expected_seq=expected_seq,
    )


Bind = Callable[[AsyncSession, BindingContext], Awaitable[BoundContainer]]
"""Names the container once the ticket is locked and may go there (it raises a TesseraError to refuse)."""


async def activate_ticket(
    session: AsyncSession,
    runtime: ActivationRuntime,
    ticket_id: uuid.UUID,
    kind: str,
    bind: Bind,
    *,
    client: str,
    now: datetime,
    nonce: str | None = None,
    expected_seq: int | None = None,
) -> Activated:
    """Activate a ticket found already (by its code, or for its holder) into a container of `kind` named by `bind`.

    Call `runtime.keys.signer(now + runtime.certificate_ttl)` before the transaction's first statement.
    """
    await lock_rows(session, Ticket.__table__, [ticket_id])  # type: ignore[arg-type]
    ticket = await session.get_one(Ticket, ticket_id, populate_existing=True)
    license = await session.get_one(License, ticket.license_id, populate_existing=True)
    product = await session.get_one(Product, license.product_id)
    facts = facts_of(license, product.code, ticket.status)
    status = effective_status(facts, now)
    if status == LicenseStatus.revoked:
        raise TicketRevoked
    if status == LicenseStatus.expired:
        raise LicenseExpired
    allowed = [str(kind) for kind in product.container_kinds]
    if kind not in allowed:
        raise ContainerKindNotAllowed(kind, allowed)
    bound = await bind(
        session,
        BindingContext(
            ticket_id=ticket.id, license_id=license.id, client=client, secret_key=runtime.secret_key, now=now
        ),
    )
    secret = activation_secrets.new_secret()
    existing = await session.scalar(
        select(Activation).where(
            Activation.ticket_id == ticket.id,
            Activation.container_id == bound.container_id,
            Activation.status == ActivationStatus.active,
        )
    )
    if existing is not None:
        if expected_seq is not None:
            check_held_seq(expected_seq, existing.seq)
        existing.secret_hash = activation_secrets.secret_hash(runtime.secret_key, secret)
        await session.flush()
        # In SQL, not from the value read: a refresh (which takes no ticket lock) may be raising it right now.
        raised = await next_seq(session, existing.id, now, expected=expected_seq)
        if raised is None and expected_seq is not None:
            raise OfflineReplay(expected_seq, expected_seq + 1)  # a certificate was issued meanwhile
        if raised is None:
            raise ActivationReturned  # freed meanwhile by something that takes no ticket lock
        activation, created, seq = existing, False, raised
    else:
        active = await session.scalar(
            select(func.count())
            .select_from(Activation)
            .where(Activation.ticket_id == ticket.id, Activation.status == ActivationStatus.active)
        )
        if (active or 0) >= product.max_activations:
            raise ActivationsExhausted(product.max_activations)
        first = await session.scalar(select(Activation.id).where(Activation.ticket_id == ticket.id).limit(1))
        if first is None and product.kind == ProductKind.time_limited:
            # Its duration runs from the first activation, not from the order.
            license.expires_at = license_expiry(product.code, product.kind, product.expiry, license.fields, now)
            facts = facts_of(license, product.code, ticket.status)
        activation = Activation(
            ticket_id=ticket.id,
            license_id=license.id,
            container_kind=bound.kind,
            container_id=bound.container_id,
            status=ActivationStatus.active,
            secret_hash=activation_secrets.secret_hash(runtime.secret_key, secret),
            seq=1,
            activated_at=now,
        )
        session.add(activation)
        ticket.status = TicketStatus.activated
        created, seq = True, 1
    await session.flush()
    pending = await _pending_subscription(session, license)
    if pending is not None:
        # In this transaction: the hand-over survives whatever happens to the signal sent after the commit.
        await handover.record(session, pending, activation.id, activation.activated_at)
    certificate = await issue_certificate(
        runtime,
        facts,
        activation_id=activation.id,
        container_id=bound.container_id,
        seq=seq,
        now=now,
        nonce=nonce,
    )
    return Activated(
        activation_id=activation.id,
        secret=secret,
        license_id=license.id,
        certificate=certificate,
        seq=seq,
        created=created,
        pending_subscription_id=pending,
        activated_at=now,
    )


async def _pending_subscription(session: AsyncSession, license: License) -> uuid.UUID | None:
    """The license's subscription if it still waits for a first activation (its workflow anchors once)."""
    if license.subscription_id is None:
        return None
    status = await session.scalar(select(Subscription.status).where(Subscription.id == license.subscription_id))
    return license.subscription_id if status == SubscriptionStatus.pending else None
