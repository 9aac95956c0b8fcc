"""The devices a cloud container is used from: at most a configured number at a time, released by hand.

Admission takes the container's row lock before counting, so concurrent first accesses from many devices take
turns and never record more devices than allowed; the unique (container, device) pair makes a device that
comes back a visit, not a second seat.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.cloud.errors import DeviceLimitReached
from tessera.cloud.models import CloudContainer, CloudDevice
from tessera.errors import NotFound
from tessera.models import utcnow

MAX_DEVICE_ID_LENGTH = 200
LAST_SEEN_PRECISION = timedelta(minutes=1)
"""Recording every visit would make each access a write more; a minute's precision tells when a device was used."""


async def list_devices(session: AsyncSession, container_id: uuid.UUID) -> list[CloudDevice]:
    query = select(CloudDevice).where(CloudDevice.container_id == container_id).order_by(CloudDevice.first_seen_at)
    return list((await session.scalars(query)).all())


async def admit_device(
    session: AsyncSession, container: CloudContainer, device_id: str, *, limit: int, at: datetime | None = None
) -> CloudDevice:
    """Record a visit of `device_id`; a new device beyond `limit` is refused. The caller holds the container's lock."""
    now = at or utcnow()
    known = await session.scalar(
        select(CloudDevice)
        .where(CloudDevice.container_id == container.id, CloudDevice.device_id == device_id)
        .execution_options(populate_existing=True)
    )
    if known is not None:
        if now - known.last_seen_at >= LAST_SEEN_PRECISION:
            known.last_seen_at = now
            await session.flush()
        return known
    count = await session.scalar(select(func.count()).where(CloudDevice.container_id == container.id))
    if (count or 0) >= limit:
        raise DeviceLimitReached(
            f"this container is already used from {limit} device(s), its limit; "
            "its owner or an administrator can release one (DELETE /cloud-containers/{id}/devices/{device_id})"
        )
    device = CloudDevice(container_id=container.id, device_id=device_id, first_seen_at=now, last_seen_at=now)
    session.add(device)
    await session.flush()
    return device


async def release_device(session: AsyncSession, container: CloudContainer, device_id: str) -> None:
    """Free the device's seat; the next access from it counts as a new device."""
    result = await session.execute(
        delete(CloudDevice).where(CloudDevice.container_id == container.id, CloudDevice.device_id == device_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no device {device_id!r} in this container")
