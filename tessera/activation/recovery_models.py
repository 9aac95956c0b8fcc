"""The lost-device recoveries of activations: one per activation, pending until its workflow ends."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tessera.models import Base, TimestampMixin, new_id


class RecoveryStatus(StrEnum):
    pending = "pending"
    """Its workflow runs (a lock period, an approval): the activation is untouched meanwhile."""
    recovered = "recovered"
    """The slot was freed; the lost activation's refresh answers revoked."""
    rejected = "rejected"
    """An approver said no: the activation stays as it was."""
    superseded = "superseded"
    """The activation was returned (or its container deleted) before the recovery ended: nothing left to free."""


class ActivationRecovery(TimestampMixin, Base):
    """A request to free a lost device's activation; `activation_id` is unique, so one activation has one recovery."""

    __tablename__ = "activation_recovery"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    activation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("activation.id"), unique=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket.id"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RecoveryStatus.pending)
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    requested_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    ended_at: Mapped[datetime | None]
