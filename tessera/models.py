"""Tables of the domain (docs/domain.md), one metadata for Alembic.

Conventions: UUID primary keys (safe to expose, no enumeration), timezone-aware UTC timestamps on every
database, money as `Numeric`, relationships `lazy="raise"` so every load is explicit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Defined apart so that the order workflow imports it without SQLAlchemy; re-exported here for the rest.
from tessera.orders.status import OrderStatus as OrderStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Store instants in UTC; SQLite drops the offset, so it is put back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# --- catalog -----------------------------------------------------------------------------------------------


class ProductKind(StrEnum):
    perpetual = "perpetual"
    time_limited = "time_limited"
    trial = "trial"
    subscription = "subscription"


class ProductGroup(TimestampMixin, Base):
    __tablename__ = "product_group"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[dict[str, Any]] = mapped_column(comment="language tag -> text")


class Product(TimestampMixin, Base):
    """An article. Fields, modules and subscription terms are validated documents (see tessera.catalog)."""

    __tablename__ = "product"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_group.id", ondelete="RESTRICT"), index=True)
    name: Mapped[dict[str, Any]]
    description: Mapped[dict[str, Any]] = mapped_column(default=dict)
    kind: Mapped[str] = mapped_column(String(16))
    erp_material_no: Mapped[str | None] = mapped_column(String(64))
    container_kinds: Mapped[list[Any]]
    max_activations: Mapped[int] = mapped_column(Integer, default=1)
    price_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    price_currency: Mapped[str | None] = mapped_column(String(3))
    subscription: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    expiry: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(), comment="trial_days_field and/or duration: how long a trial or time-limited license runs"
    )
    fields: Mapped[list[Any]] = mapped_column(default=list)
    modules: Mapped[list[Any]] = mapped_column(default=list)

    group: Mapped[ProductGroup] = relationship(lazy="raise")

    __table_args__ = (CheckConstraint("max_activations >= 1", name="max_activations_positive"),)


class CatalogSetting(TimestampMixin, Base):
    """Catalog-wide documents that are not products, e.g. `customer_fields`."""

    __tablename__ = "catalog_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[list[Any]]


# --- organizations, users, rights -------------------------------------------------------------------------


class OrganizationKind(StrEnum):
    vendor = "vendor"
    reseller = "reseller"
    customer = "customer"
    group = "group"


class Organization(TimestampMixin, Base):
    __tablename__ = "organization"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    erp_customer_no: Mapped[str | None] = mapped_column(String(64), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(35), default="en")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)

    parent: Mapped[Organization | None] = relationship(remote_side="Organization.id", lazy="raise")


class User(TimestampMixin, Base):
    __tablename__ = "user_account"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True, comment="stored lower-case")
    name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(35), default="en")
    password_hash: Mapped[str | None] = mapped_column(
        String(255), comment="Argon2id; empty until the user redeems an invitation"
    )


class Role(StrEnum):
    admin = "admin"
    member = "member"


class Membership(TimestampMixin, Base):
    __tablename__ = "membership"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))


class Permission(StrEnum):
    create = "create"
    revoke = "revoke"
    cancel = "cancel"
    allocate = "allocate"


class Grant(TimestampMixin, Base):
    """Permissions of an organization on a product group; `parent_grant_id` links a delegated grant."""

    __tablename__ = "grant_"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    product_group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_group.id", ondelete="CASCADE"))
    permissions: Mapped[list[Any]]
    quota: Mapped[int | None] = mapped_column(Integer)
    quota_used: Mapped[int] = mapped_column(Integer, default=0)
    delegable: Mapped[bool] = mapped_column(default=False)
    parent_grant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grant_.id", ondelete="CASCADE"))
    granted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(
        comment="set when withdrawn; the row stays so orders keep naming the grant they used"
    )

    __table_args__ = (
        UniqueConstraint("organization_id", "product_group_id"),
        CheckConstraint("quota IS NULL OR quota >= 0", name="quota_not_negative"),
        CheckConstraint("quota IS NULL OR quota_used <= quota", name="quota_not_exceeded"),
    )


class ApiKeyKind(StrEnum):
    key = "key"
    """A bearer key for the API (`tsk_`)."""
    session = "session"
    """A signed-in portal session (`tsp_`), accepted only from the portal's cookie, never as a bearer key."""


class ApiKey(TimestampMixin, Base):
    """A bearer key of a user, or of an organization's service account (`user_id` empty), or a portal session.

    Only a keyed hash (HMAC-SHA256 with the deployment secret) is stored; `prefix` is the public part that
    lets people tell their keys apart in listings. A portal session is a key of kind `session`: the pages act
    through exactly the same principal, scopes and reach as the API.
    """

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=ApiKeyKind.key, server_default=ApiKeyKind.key.value)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    secret_version: Mapped[str | None] = mapped_column(
        String(16), comment="version of the deployment secret behind secret_hash; empty: from before versions"
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who issued a service-account key"
    )

    __table_args__ = (CheckConstraint("user_id IS NOT NULL OR organization_id IS NOT NULL", name="has_owner"),)


class Invitation(TimestampMixin, Base):
    """A one-time link that lets the owner of an address set a password and accept a membership.

    Only a SHA-256 of the token is stored (the token carries 256 random bits, so no key is needed); the user
    row and the membership are written when the invitation is redeemed, never before.
    """

    __tablename__ = "invitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True, comment="normalized, lower-case")
    name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(35), default="en")
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    invited_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    invited_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    redeemed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))


class PasswordReset(TimestampMixin, Base):
    """A one-time link that lets the owner of an account's address choose a new password.

    Only a SHA-256 of the token is stored, as for invitations; a newer request ends the older links (their
    `expires_at` is moved to the moment of the newer one), and `used_at` is set once, by one conditional update.
    """

    __tablename__ = "password_reset"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class GrantAction(StrEnum):
    granted = "granted"
    changed = "changed"
    withdrawn = "withdrawn"


class GrantEvent(Base):
    """Audit trail of grants: who granted, changed or withdrew what, and when.

    Plain id columns without foreign keys, so the history outlives the grant, organization or user it names.
    """

    __tablename__ = "grant_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    grant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    product_group_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(16))
    permissions: Mapped[list[Any]]
    quota: Mapped[int | None] = mapped_column(Integer)
    delegable: Mapped[bool]
    parent_grant_id: Mapped[uuid.UUID | None]
    actor_user_id: Mapped[uuid.UUID | None]
    actor_api_key_id: Mapped[uuid.UUID | None]
    reason: Mapped[str | None] = mapped_column(String(200), comment="e.g. withdrawn with the grant it came from")


# --- orders, licenses, tickets ----------------------------------------------------------------------------


class Order(TimestampMixin, Base):
    __tablename__ = "order_"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product.id"))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    modules: Mapped[list[Any]] = mapped_column(default=list)
    quantity: Mapped[int] = mapped_column(Integer)
    allocation: Mapped[str] = mapped_column(String(16))
    allocate_to_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    visibility: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    external_ref_scope_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organization.id"),
        comment="the top-level organization below the vendor whose ERP namespace external_ref belongs to",
    )
    status: Mapped[str] = mapped_column(String(24), index=True)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    grant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grant_.id", ondelete="SET NULL"))
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    requested_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    process_version: Mapped[str | None] = mapped_column(String(64), comment="hash of the workflows.yaml it follows")
    trail: Mapped[list[Any]] = mapped_column(default=list, comment="the workflow's step trail, mirrored")
    workflow_started_at: Mapped[datetime | None]
    quota_released_at: Mapped[datetime | None] = mapped_column(comment="set once: a release never happens twice")
    subscription_start: Mapped[date | None] = mapped_column(
        Date, comment="a subscription taken over from another system: the first day of its first term there"
    )

    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        # An idempotency key is scoped to whoever sent it, so two callers never collide.
        UniqueConstraint("requested_by_api_key_id", "idempotency_key"),
        # An ERP's references are unique within its reseller's (or direct customer's) subtree, not worldwide.
        UniqueConstraint("external_ref_scope_id", "external_ref"),
    )


class LicenseStatus(StrEnum):
    active = "active"
    expired = "expired"
    revoked = "revoked"


class License(TimestampMixin, Base):
    __tablename__ = "license"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_.id"))
    line_no: Mapped[int] = mapped_column(Integer, comment="1..quantity: the idempotency key within an order")
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product.id"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    modules: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=LicenseStatus.active)
    expires_at: Mapped[datetime | None]
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subscription.id"), index=True, comment="set for a subscription product's licenses"
    )

    __table_args__ = (UniqueConstraint("order_id", "line_no"),)


class Visibility(StrEnum):
    all_members = "all_members"
    admins_only = "admins_only"


class TicketStatus(StrEnum):
    available = "available"
    activated = "activated"
    returned = "returned"
    revoked = "revoked"


class Ticket(TimestampMixin, Base):
    """One ticket per license. The code is stored only as a keyed hash plus an encrypted copy."""

    __tablename__ = "ticket"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("license.id"), unique=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    code_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    allocated_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.all_members)
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.available)
    note: Mapped[str | None] = mapped_column(Text)


Index("ix_order_organization_created", Order.organization_id, Order.created_at)


class TicketAction(StrEnum):
    returned = "returned"
    """Allocated by name to someone who left the organization: back to the organization, for its admins."""


class TicketEvent(Base):
    """Audit trail of tickets' allocations changed by the system, e.g. when their holder left the organization.

    Plain id columns without foreign keys, like `grant_event`, so the history outlives what it names.
    """

    __tablename__ = "ticket_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_user_id: Mapped[uuid.UUID | None] = mapped_column(comment="who held it by name before")
    actor_user_id: Mapped[uuid.UUID | None]
    actor_api_key_id: Mapped[uuid.UUID | None]
    reason: Mapped[str | None] = mapped_column(String(200))


# --- subscriptions ------------------------------------------------------------------------------------------


class SubscriptionStatus(StrEnum):
    pending = "pending"
    """Its terms start at the first activation, which has not happened yet."""
    active = "active"
    non_renewing = "non_renewing"
    """Cancelled: it ends at its effective end unless the cancellation is withdrawn before."""
    expired = "expired"
    revoked = "revoked"


LIVE_SUBSCRIPTION_STATUSES = (SubscriptionStatus.pending, SubscriptionStatus.active, SubscriptionStatus.non_renewing)


class ManagedBy(StrEnum):
    tessera = "tessera"
    """A renewal workflow runs each term."""
    erp = "erp"
    """The ERP extends or ends it with POST /subscriptions/{id}/terms; no renewal workflow."""


class Subscription(TimestampMixin, Base):
    """One per subscription order, covering its licenses; the price and terms are snapshots taken at order time.

    The current term's dates are copied here from its `subscription_term` row, so lists and filters need no join.
    """

    __tablename__ = "subscription"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_.id"), unique=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product.id"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organization.id"), index=True, comment="the nearest reseller above the organization"
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    managed_by: Mapped[str] = mapped_column(String(8), default=ManagedBy.tessera)
    quantity: Mapped[int] = mapped_column(Integer)
    next_quantity: Mapped[int | None] = mapped_column(Integer, comment="takes effect at the next renewal")
    timezone: Mapped[str] = mapped_column(String(64))
    terms: Mapped[dict[str, Any]] = mapped_column(comment="the product's subscription settings at order time")
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), comment="per license and term")
    currency: Mapped[str | None] = mapped_column(String(3))
    start_date: Mapped[date | None] = mapped_column(Date, comment="first day of term 1; empty while pending")
    imported_terms: Mapped[int] = mapped_column(Integer, default=0, comment="terms taken over from another system")
    term_no: Mapped[int] = mapped_column(Integer, default=0, comment="the current term; 0 while pending")
    term_starts_at: Mapped[datetime | None]
    term_ends_at: Mapped[datetime | None] = mapped_column(index=True)
    valid_through: Mapped[date | None] = mapped_column(Date)
    last_day_to_cancel: Mapped[date | None] = mapped_column(Date)
    cancel_deadline_at: Mapped[datetime | None]
    effective_end_at: Mapped[datetime | None] = mapped_column(comment="when a cancelled subscription ends")
    cancellations: Mapped[int] = mapped_column(Integer, default=0, comment="how many were requested: the n of ids")
    revoked_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(comment="when it expired or was revoked")
    workflow_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("next_quantity IS NULL OR next_quantity >= 1", name="next_quantity_positive"),
    )


class TermKind(StrEnum):
    first = "first"
    renewal = "renewal"
    imported = "imported"
    """Before the subscription was taken over from another system: known, never billed by Tessera."""
    erp = "erp"


class SubscriptionTerm(TimestampMixin, Base):
    """A term of a subscription. A renewal row is written at commitment and marked renewed when it starts.

    Unique on (subscription, term_no), so a retried or replayed renewal never writes a second row; ERP terms are
    unique on their `external_ref` too.
    """

    __tablename__ = "subscription_term"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    term_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date)
    valid_through: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    last_day_to_cancel: Mapped[date | None] = mapped_column(Date)
    cancel_deadline_at: Mapped[datetime | None]
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), comment="per license, for this term")
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), comment="unit price x quantity")
    committed_at: Mapped[datetime | None] = mapped_column(comment="when its renewal became binding")
    renewed_at: Mapped[datetime | None] = mapped_column(comment="the effective renewal: when the term began")
    external_ref: Mapped[str | None] = mapped_column(String(200), comment="the ERP's reference of an ERP term")

    __table_args__ = (
        UniqueConstraint("subscription_id", "term_no"),
        UniqueConstraint("subscription_id", "external_ref"),
    )


class CancellationStatus(StrEnum):
    requested = "requested"
    """Received; its configured steps (e.g. an approval) run."""
    applied = "applied"
    rejected = "rejected"
    withdrawn = "withdrawn"
    """Uncancelled before its effective end."""


LIVE_CANCELLATION_STATUSES = (CancellationStatus.requested, CancellationStatus.applied)


class Cancellation(TimestampMixin, Base):
    """The n-th cancellation of a subscription; its effective end is fixed by when the API received it."""

    __tablename__ = "cancellation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    n: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]
    effective_term_no: Mapped[int] = mapped_column(Integer, comment="the term at whose end it takes effect")
    effective_end_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(2000))
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    requested_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    decided_at: Mapped[datetime | None]
    workflow_id: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("subscription_id", "n"),)


class SubscriptionEvent(Base):
    """What happened to a subscription, in order: created, activated, committed, renewed, cancelled, ..."""

    __tablename__ = "subscription_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(200), unique=True, comment="business key: written once")
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    term_no: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor_user_id: Mapped[uuid.UUID | None]
    actor_api_key_id: Mapped[uuid.UUID | None]


# --- outbox ------------------------------------------------------------------------------------------------


class EventKind(StrEnum):
    notification = "notification"
    webhook = "webhook"


class Event(Base):
    """The outbox: notifications rendered by `notify` steps and events published by `webhook` steps.

    `key` is the business key of the step that wrote it (order, step, position), so a retried or replayed
    activity never writes a second row.
    """

    __tablename__ = "event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120), comment="event name or template file")
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id"), index=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("order_.id"), index=True)
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when the outbox relay handed it on (webhook deliveries started); null: not yet"
    )

    # E-mail delivery of notifications (tessera/email/state.py has the life cycle): dispatched to a workflow,
    # claimed by one attempt at a time, handed over to the SMTP server, then sent, unconfirmed or refused.
    email_dispatched_at: Mapped[datetime | None] = mapped_column(comment="its EmailDeliveryWorkflow was started")
    email_claimed_at: Mapped[datetime | None] = mapped_column(comment="start of the sending attempt's lease")
    email_claim_token: Mapped[str | None] = mapped_column(String(64), comment="which attempt holds the claim")
    email_handed_over_at: Mapped[datetime | None] = mapped_column(comment="the message's data went to the server")
    email_sent_at: Mapped[datetime | None] = mapped_column()
    email_outcome: Mapped[str | None] = mapped_column(String(16), comment="sent | unconfirmed | refused | skipped")
    email_send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    email_message_id: Mapped[str | None] = mapped_column(String(320))
    email_last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_event_email_pending", "kind", "email_dispatched_at", "created_at"),)


# Tables of their own domain packages, on the same metadata (Alembic sees one schema). A module import, so that
# importing tessera.webhooks.models first (it imports this module) works too.
import tessera.activation.models  # noqa: E402
import tessera.activation.recovery_models  # noqa: E402
import tessera.cloud.models  # noqa: E402
import tessera.reports.models  # noqa: E402
import tessera.webhooks.models  # noqa: E402, F401
