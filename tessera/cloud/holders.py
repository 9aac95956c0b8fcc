"""A signed-in person's own activations: tickets they hold, activated into their own cloud container, and returned.

The person's session stands for the ticket code and for the container's credential, so neither is typed nor shown:
- the ticket is one the person could activate themselves (`reach.mine_filter`, what `GET /tickets?mine=true`
  lists), or any ticket whose code they type (the code is the bearer credential, as on `POST /activations`);
- the container is their own (`container_filter`, owned by them): the oldest, created at
  the first use in the ticket's organization (or, when they are no member there, in one of theirs). The first use
  takes the person's row, after the ticket's, so two first activations at once create one container.

Returning: the activation's cloud container is one the person reaches (whoever may delete a container may take
one license out of it; the return counts as a move), or the person administers the ticket with the `allocate`
permission (as `DELETE /activations/{id}` with an administrator's key). A device's activation (software, dongle)
of a mere holder goes back from the device, with its secret, or through an administrator: returning it from a
browser would let the license run twice while the device keeps its certificate (see Lost devices).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation import returns, service
from tessera.activation.certificates import certificate_exp
from tessera.activation.containers import BindingContext, BoundContainer
from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.runtime import ActivationRuntime
from tessera.cloud import containers
from tessera.cloud.binding import KIND, container_id_of
from tessera.cloud.models import CloudContainer
from tessera.errors import Forbidden, NotFound
from tessera.models import License, Permission, Product, Ticket, User, utcnow
from tessera.principal import Principal
from tessera.rights import acting, reach
from tessera.rights.locks import lock_rows

LISTED = 200


def _own_binder(principal: Principal, secret_key: bytes, api_base_url: str) -> service.Bind:
    async def bind(session: AsyncSession, context: BindingContext) -> BoundContainer:
        chosen = await _own_container(session, principal, secret_key, api_base_url, context.ticket_id)
        return BoundContainer(KIND, container_id_of(chosen.id))

    return bind


async def _own_container(
    session: AsyncSession, principal: Principal, secret_key: bytes, api_base_url: str, ticket_id: uuid.UUID
) -> CloudContainer:
    if principal.user_id is None:
        raise NotFound("a service account has no cloud container of its own")
    query = (
        select(CloudContainer.id)
        .where(containers.container_filter(principal), CloudContainer.user_id == principal.user_id)
        .order_by(CloudContainer.created_at, CloudContainer.id)
        .limit(1)
    )
    found = await session.scalar(query)
    if found is None:
        await lock_rows(session, User.__table__, [principal.user_id])  # type: ignore[arg-type]
        found = await session.scalar(query)  # another first activation of this person may have made it meanwhile
    if found is not None:
        # Locked, so a deletion of the container waits for this activation (or this one sees it deleted).
        return await containers.get_container(session, principal, found, lock=True)
    organization_id = await session.scalar(select(Ticket.organization_id).where(Ticket.id == ticket_id))
    if organization_id not in principal.member_of:
        organization_id = min(principal.member_of) if principal.member_of else organization_id
    created, _file = await containers.create_container(
        session, principal, secret_key, api_base_url=api_base_url, organization_id=organization_id
    )
    return created


async def activate_held(
    session: AsyncSession,
    runtime: ActivationRuntime,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    client: str,
    api_base_url: str,
    now: datetime | None = None,
) -> service.Activated:
    """Activate a ticket the person could activate themselves into their cloud container; the caller commits."""
    now = now or utcnow()
    await runtime.keys.signer(now + runtime.certificate_ttl)  # before this transaction writes (see SigningKeys)
    held = await session.scalar(select(Ticket.id).where(Ticket.id == ticket_id, reach.mine_filter(principal)))
    if held is None:
        raise NotFound(f"no ticket {ticket_id} for you to activate")
    bind = _own_binder(principal, runtime.secret_key, api_base_url)
    return await service.activate_ticket(session, runtime, held, KIND, bind, client=client, now=now)


async def activate_code(
    session: AsyncSession,
    runtime: ActivationRuntime,
    principal: Principal,
    code: str,
    *,
    client: str,
    api_base_url: str,
    now: datetime | None = None,
) -> service.Activated:
    """Activate the ticket of a typed code into the person's cloud container; failed look-ups are counted."""
    now = now or utcnow()
    await runtime.keys.signer(now + runtime.certificate_ttl)
    ticket_id = await service.find_ticket_id(session, runtime, code, client, None)
    bind = _own_binder(principal, runtime.secret_key, api_base_url)
    return await service.activate_ticket(session, runtime, ticket_id, KIND, bind, client=client, now=now)


def _cloud_container_uuid(container_id: str) -> uuid.UUID | None:
    kind, _, value = container_id.partition(":")
    if kind != KIND:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _reaches_container(session: AsyncSession, principal: Principal, container_id: str) -> bool:
    cloud_id = _cloud_container_uuid(container_id)
    if cloud_id is None:
        return False
    found = await session.scalar(
        select(CloudContainer.id).where(CloudContainer.id == cloud_id, containers.container_filter(principal))
    )
    return found is not None


async def _allocates(session: AsyncSession, principal: Principal, group_id: uuid.UUID, org: uuid.UUID) -> bool:
    try:
        await acting.authorize(session, principal, Permission.allocate, group_id, org)
    except (NotFound, Forbidden):
        return False
    return True


async def return_held(
    session: AsyncSession, runtime: ActivationRuntime, principal: Principal, activation_id: uuid.UUID, *, client: str
) -> returns.Returned:
    """Return an activation from the person's cloud container, or as an administrator of its ticket."""
    container_id = await session.scalar(select(Activation.container_id).where(Activation.id == activation_id))
    if container_id is not None and await _reaches_container(session, principal, container_id):
        return await returns.return_activation(
            session, runtime, activation_id, secret=None, principal=None, authorized_by=principal, client=client
        )
    return await returns.return_activation(
        session, runtime, activation_id, secret=None, principal=principal, client=client
    )


@dataclass(frozen=True)
class HeldActivation:
    id: uuid.UUID
    container_id: str
    cloud_container_id: uuid.UUID | None
    cloud_container_name: str | None
    product_name: dict[str, str]
    product_code: str
    ticket_id: uuid.UUID
    seq: int
    status: str
    activated_at: datetime
    certificate_until: datetime
    """When the newest certificate issued for it ends (cloud devices renew theirs hourly from the container)."""
    returnable: bool


async def list_held(session: AsyncSession, principal: Principal, *, certificate_ttl: timedelta) -> list[HeldActivation]:
    """The person's activations, newest first: of tickets they could activate, and in their own cloud containers."""
    owned = (
        await session.scalars(
            select(CloudContainer).where(
                containers.container_filter(principal), CloudContainer.user_id == principal.user_id
            )
        )
    ).all()
    by_aud = {container_id_of(c.id): c for c in owned}
    rows = (
        await session.execute(
            select(Activation, License, Product, Ticket.organization_id)
            .join(License, License.id == Activation.license_id)
            .join(Product, Product.id == License.product_id)
            .join(Ticket, Ticket.id == Activation.ticket_id)
            .where(or_(reach.mine_filter(principal), Activation.container_id.in_(list(by_aud))))
            .order_by(Activation.activated_at.desc(), Activation.id.desc())
            .limit(LISTED)
        )
    ).all()
    allocating: dict[tuple[uuid.UUID, uuid.UUID], bool] = {}
    listed: list[HeldActivation] = []
    for activation, license, product, organization_id in rows:
        cloud = by_aud.get(activation.container_id)
        returnable = False
        if activation.status == ActivationStatus.active:
            returnable = cloud is not None or await _reaches_container(session, principal, activation.container_id)
            if not returnable:
                pair = (product.group_id, organization_id)
                if pair not in allocating:
                    allocating[pair] = await _allocates(session, principal, *pair)
                returnable = allocating[pair]
        issued = activation.refreshed_at or activation.activated_at
        until = certificate_exp(service.facts_of(license, product.code, ""), issued, certificate_ttl)
        listed.append(
            HeldActivation(
                id=activation.id,
                container_id=activation.container_id,
                cloud_container_id=cloud.id if cloud else None,
                cloud_container_name=cloud.name if cloud else None,
                product_name=dict(product.name),
                product_code=product.code,
                ticket_id=activation.ticket_id,
                seq=activation.seq,
                status=activation.status,
                activated_at=activation.activated_at,
                certificate_until=until,
                returnable=returnable,
            )
        )
    return listed


@dataclass(frozen=True)
class ContainedActivation:
    id: uuid.UUID
    product_name: dict[str, str]
    product_code: str
    seq: int
    activated_at: datetime


async def active_in_containers(
    session: AsyncSession, containers_seen: list[CloudContainer]
) -> dict[uuid.UUID, list[ContainedActivation]]:
    """The active activations of containers the caller has already found within its reach, oldest first."""
    by_aud = {container_id_of(container.id): container.id for container in containers_seen}
    found: dict[uuid.UUID, list[ContainedActivation]] = {container.id: [] for container in containers_seen}
    if not by_aud:
        return found
    rows = await session.execute(
        select(Activation, Product)
        .join(License, License.id == Activation.license_id)
        .join(Product, Product.id == License.product_id)
        .where(Activation.container_id.in_(list(by_aud)), Activation.status == ActivationStatus.active)
        .order_by(Activation.activated_at, Activation.id)
    )
    for activation, product in rows.all():
        found[by_aud[activation.container_id]].append(
            ContainedActivation(
                id=activation.id,
                product_name=dict(product.name),
                product_code=product.code,
                seq=activation.seq,
                activated_at=activation.activated_at,
            )
        )
    return found


async def in_own_containers(session: AsyncSession, principal: Principal, ticket_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `ticket_ids` active in one of the person's own cloud containers (nothing left to activate there)."""
    if not ticket_ids or principal.user_id is None:
        return set()
    owned = await session.scalars(
        select(CloudContainer.id).where(
            containers.container_filter(principal), CloudContainer.user_id == principal.user_id
        )
    )
    audiences = [container_id_of(container_id) for container_id in owned.all()]
    if not audiences:
        return set()
    found = await session.scalars(
        select(Activation.ticket_id).where(
            Activation.ticket_id.in_(ticket_ids),
            Activation.container_id.in_(audiences),
            Activation.status == ActivationStatus.active,
        )
    )
    return set(found.all())
