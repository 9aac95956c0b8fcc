"""The activation domain's tables: signing keys, activations, and the answers to offline request files."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from tessera.models import Base, TimestampMixin, new_id, utcnow


class ActivationStatus(StrEnum):
    active = "active"
    """Holds one of its ticket's `max_activations` slots."""
    returned = "returned"
    """Given back (deactivated): the slot is free, the row stays as the history of moves."""
    recovered = "recovered"
    """Taken back from a lost device: the slot is free, and refresh answers a `revoked` certificate."""


class SigningKey(Base):
    """An Ed25519 key pair that signs license certificates; the newest (highest `generation`) signs.

    The private key is stored only encrypted under a key derived from the deployment secret, with the `kid` as
    authenticated data. `generation` is unique, so two processes starting at once create one first key, and two
    rotations at once one new key each time. A retired key stays published while `signed_until` is ahead.
    """

    __tablename__ = "signing_key"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True, comment="the public key's JWK thumbprint (RFC 7638)")
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(comment="a newer key signs since")
    signed_until: Mapped[datetime | None] = mapped_column(
        comment="no certificate it signed expires later (an upper bound, raised ahead of signing)"
    )


class Activation(TimestampMixin, Base):
    """A ticket's license bound to one container. At most one active row per ticket and container."""

    __tablename__ = "activation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket.id"))
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("license.id"), index=True)
    container_kind: Mapped[str] = mapped_column(String(16))
    container_id: Mapped[str] = mapped_column(String(300), comment="`<kind>:<fingerprint|serial|id>`; the `aud`")
    status: Mapped[str] = mapped_column(String(16), default=ActivationStatus.active)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), comment="HMAC-SHA256 of the secret, shown once")
    seq: Mapped[int] = mapped_column(Integer, default=0, comment="certificates issued for this activation")
    activated_at: Mapped[datetime] = mapped_column(default=utcnow)
    refreshed_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    returned_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    returned_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))

    __table_args__ = (
        # The same ticket activated into the same container twice is one activation, even when raced.
        Index(
            "uq_activation_active_container",
            "ticket_id",
            "container_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_activation_ticket_returned", "ticket_id", "returned_at"),
    )


class OfflineExchange(Base):
    """One offline request file and the update file answered for it, found by its nonce's hash.

    The answer may hold a new activation's secret, so it is stored encrypted (the nonce hash as authenticated
    data); the identical request again gets the identical answer, another request with the same nonce nothing.
    """

    __tablename__ = "offline_exchange"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    nonce_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), comment="SHA-256 of the canonical request")
    activation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("activation.id"), index=True, comment="none while the nonce is claimed and the answer not made yet"
    )
    answer_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FirstActivation(Base):
    """The first activation of a subscription that waited for it, written in the activation's own transaction.

    It is the hand-over to the subscription's workflow that cannot be lost: the API signals the workflow after
    the commit, and whatever that signal missed (Temporal away, the process gone) the worker's relay sends again
    until Temporal took it (`signalled_at`); a workflow that begins later reads the row itself. Unique per
    subscription, so concurrent first activations of several of its tickets agree on one instant: the anchor.
    """

    __tablename__ = "first_activation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id"), unique=True)
    activation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("activation.id"))
    activated_at: Mapped[datetime] = mapped_column(comment="the instant the subscription's anchor is taken from")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    signalled_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="Temporal took the signal, or the subscription no longer waited; null: the relay sends it"
    )
