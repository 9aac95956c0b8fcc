"""A device reaching its cloud container: the credential opens it, the device takes a seat, certificates come back.

One certificate per license active in the container, in the same format as any activation's (audience
`cloud:<container id>`, the activation's id and its next `seq`), valid for `cloud_access_ttl` only (or less, when
the license ends sooner): a device that lost its seat or whose container's credential was rotated holds nothing
that lasts. An empty container answers an empty list, and the device is seated all the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation.certificates import LicenseFacts, certificate_exp, license_claims, sign_certificate
from tessera.activation.keys import Signer
from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.returns import free_activation
from tessera.activation.runtime import ActivationRuntime
from tessera.cloud import containers, devices
from tessera.cloud.binding import container_id_of, credential_limiter
from tessera.cloud.errors import InvalidCredential
from tessera.models import License, Product, Ticket, utcnow
from tessera.principal import Principal
from tessera.rights.locks import lock_rows
from tessera.settings import Settings


@dataclass(frozen=True)
class IssuedCertificate:
    license_id: uuid.UUID
    activation_id: uuid.UUID
    certificate: str


@dataclass(frozen=True)
class AccessGrant:
    cloud_container_id: uuid.UUID
    device_id: str
    expires_at: datetime
    certificates: list[IssuedCertificate] = field(default_factory=list)


_activation: Table = Activation.__table__  # type: ignore[assignment]
_license: Table = License.__table__  # type: ignore[assignment]
_product: Table = Product.__table__  # type: ignore[assignment]
_ticket: Table = Ticket.__table__  # type: ignore[assignment]

# Built once, with the container id bound: one statement raises every seq, one reads what the certificates say.
_RAISE_SEQS = (
    update(_activation)
    .where(_activation.c.container_id == bindparam("audience"), _activation.c.status == ActivationStatus.active)
    .values(seq=_activation.c.seq + 1, refreshed_at=bindparam("now"), updated_at=bindparam("now"))
    .returning(_activation.c.id, _activation.c.seq)
)
_READ_LICENSES = (
    select(
        _activation.c.id,
        _activation.c.license_id,
        _license.c.status.label("license_status"),
        _license.c.expires_at,
        _license.c.fields,
        _license.c.modules,
        _product.c.code,
        _ticket.c.status.label("ticket_status"),
    )
    .select_from(
        _activation.join(_license, _license.c.id == _activation.c.license_id)
        .join(_product, _product.c.id == _license.c.product_id)
        .join(_ticket, _ticket.c.id == _activation.c.ticket_id)
    )
    .where(_activation.c.container_id == bindparam("audience"), _activation.c.status == ActivationStatus.active)
    .order_by(_activation.c.activated_at, _activation.c.id)
)


async def _active_in(session: AsyncSession, container_id: uuid.UUID) -> list[Activation]:
    query = (
        select(Activation)
        .where(Activation.container_id == container_id_of(container_id), Activation.status == ActivationStatus.active)
        .order_by(Activation.activated_at, Activation.id)
    )
    return list((await session.scalars(query)).all())


async def _certify(
    session: AsyncSession, runtime: ActivationRuntime, signer: Signer, audience: str, now: datetime, ttl: timedelta
) -> list[IssuedCertificate]:
    """One certificate per active license in the container, whose row lock the caller holds: two statements."""
    raised = await session.execute(_RAISE_SEQS, {"audience": audience, "now": now})
    seqs: dict[uuid.UUID, int] = {row.id: row.seq for row in raised}
    issued = []
    for row in (await session.execute(_READ_LICENSES, {"audience": audience})).all():
        if row.id not in seqs:  # returned by its ticket's holder between the two statements
            continue
        facts = LicenseFacts(
            license_id=row.license_id,
            product_code=row.code,
            modules=list(row.modules or []),
            fields=dict(row.fields or {}),
            license_status=row.license_status,
            ticket_status=row.ticket_status,
            expires_at=row.expires_at,
        )
        claims = license_claims(
            facts,
            issuer=runtime.issuer,
            audience=audience,
            activation_id=row.id,
            seq=seqs[row.id],
            now=now,
            exp=certificate_exp(facts, now, ttl),
        )
        issued.append(IssuedCertificate(row.license_id, row.id, sign_certificate(signer, claims)))
    return issued


async def access_container(
    session: AsyncSession,
    runtime: ActivationRuntime,
    container_id: uuid.UUID,
    credential: str,
    device_id: str,
    *,
    settings: Settings,
    client: str,
    now: datetime | None = None,
) -> AccessGrant:
    """Open the container with its credential, seat the device (within the limit), certify its licenses."""
    now = now or utcnow()
    limiter = credential_limiter(runtime.limits)
    await limiter.check(client)
    until = now + settings.cloud_access_ttl
    # The key first: reading it (or raising its signed_until) may need a write that must not wait behind ours.
    signer = await runtime.keys.signer(until)
    try:
        container = await containers.open_container(session, runtime.secret_key, container_id, credential, lock=True)
    except InvalidCredential:
        await limiter.failed(client)
        raise
    await devices.admit_device(session, container, device_id, limit=settings.cloud_device_limit, at=now)
    issued = await _certify(session, runtime, signer, container_id_of(container.id), now, settings.cloud_access_ttl)
    return AccessGrant(container.id, device_id, until, issued)


async def delete_with_activations(
    session: AsyncSession, principal: Principal, container_id: uuid.UUID, *, now: datetime | None = None
) -> list[uuid.UUID]:
    """Delete the container and return every activation in it (slots freed, no move counted); their ids.

    The tickets are locked before the container, in the order activation takes them, so a deletion and an
    activation into the same container never wait for each other in a circle.
    """
    now = now or utcnow()
    await containers.get_container(session, principal, container_id)  # 404 before any lock
    tickets = await session.scalars(
        select(Activation.ticket_id).where(
            Activation.container_id == container_id_of(container_id), Activation.status == ActivationStatus.active
        )
    )
    await lock_rows(session, Ticket.__table__, list(tickets.all()))  # type: ignore[arg-type]
    await containers.delete_container(session, principal, container_id, at=now)
    freed = []
    for activation in await _active_in(session, container_id):
        if await free_activation(session, activation.id, now=now, by=principal):
            freed.append(activation.id)
    return freed
