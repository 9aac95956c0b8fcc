"""Cloud containers (held by Tessera, reached with a credential file) and the devices that reach them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tessera.models import Base, TimestampMixin, new_id, utcnow


class CloudContainer(TimestampMixin, Base):
    """A container held by Tessera for a user (within one organization) or for an organization itself.

    `organization_id` is always set: it is where the container lives, so that organization's administrators (and
    those above) see and manage it. Only a keyed hash of the current credential is stored; `credential_generation`
    counts issued credentials (1 at creation, +1 per rotation), so no rotation is ever lost.
    """

    __tablename__ = "cloud_container"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id"), index=True, comment="the owner; empty for an organization's container"
    )
    name: Mapped[str] = mapped_column(String(200))
    credential_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    credential_version: Mapped[str] = mapped_column(String(16), comment="version of the secret behind the hash")
    credential_generation: Mapped[int] = mapped_column(Integer, default=1)
    credential_rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id", ondelete="SET NULL"))
    deleted_at: Mapped[datetime | None] = mapped_column(comment="a deleted container keeps its row for the history")


class CloudDevice(Base):
    """A device that reached a container; a container admits a limited number (a setting) at a time."""

    __tablename__ = "cloud_device"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    container_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cloud_container.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(200))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("container_id", "device_id"),)
