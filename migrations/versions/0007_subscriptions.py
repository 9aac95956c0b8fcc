"""subscriptions: terms with renewal records, cancellations, their history; licenses name their subscription

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=True, comment="the nearest reseller above the organization"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("managed_by", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("next_quantity", sa.Integer(), nullable=True, comment="takes effect at the next renewal"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False, comment="the product's subscription settings at order time"),
        sa.Column("unit_price", sa.Numeric(18, 4), nullable=True, comment="per license and term"),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True, comment="first day of term 1; empty while pending"),
        sa.Column("imported_terms", sa.Integer(), nullable=False, comment="terms taken over from another system"),
        sa.Column("term_no", sa.Integer(), nullable=False, comment="the current term; 0 while pending"),
        sa.Column("term_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("term_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_through", sa.Date(), nullable=True),
        sa.Column("last_day_to_cancel", sa.Date(), nullable=True),
        sa.Column("cancel_deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "effective_end_at", sa.DateTime(timezone=True), nullable=True, comment="when a cancelled subscription ends"
        ),
        sa.Column("cancellations", sa.Integer(), nullable=False, comment="how many were requested: the n of ids"),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True, comment="when it expired or was revoked"),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_subscription_quantity_positive")),
        sa.CheckConstraint(
            "next_quantity IS NULL OR next_quantity >= 1", name=op.f("ck_subscription_next_quantity_positive")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["order_.id"], name=op.f("fk_subscription_order_id_order_")),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_subscription_product_id_product")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_subscription_organization_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["organization.id"], name=op.f("fk_subscription_reseller_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
        sa.UniqueConstraint("order_id", name=op.f("uq_subscription_order_id")),
    )
    for column in ("product_id", "organization_id", "reseller_id", "status", "term_ends_at"):
        op.create_index(op.f(f"ix_subscription_{column}"), "subscription", [column])

    op.create_table(
        "subscription_term",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("term_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("valid_through", sa.Date(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_day_to_cancel", sa.Date(), nullable=True),
        sa.Column("cancel_deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(18, 4), nullable=True, comment="per license, for this term"),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("amount", sa.Numeric(18, 4), nullable=True, comment="unit price x quantity"),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True, comment="when its renewal became binding"),
        sa.Column(
            "renewed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the effective renewal: when the term began",
        ),
        sa.Column("external_ref", sa.String(200), nullable=True, comment="the ERP's reference of an ERP term"),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_subscription_term_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_term")),
        sa.UniqueConstraint("subscription_id", "term_no", name=op.f("uq_subscription_term_subscription_id_term_no")),
        sa.UniqueConstraint(
            "subscription_id", "external_ref", name=op.f("uq_subscription_term_subscription_id_external_ref")
        ),
    )
    op.create_index(op.f("ix_subscription_term_starts_at"), "subscription_term", ["starts_at"])

    op.create_table(
        "cancellation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_term_no", sa.Integer(), nullable=False, comment="the term at whose end it takes effect"),
        sa.Column("effective_end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("requested_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by_api_key_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_cancellation_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_cancellation_requested_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_api_key_id"], ["api_key.id"], name=op.f("fk_cancellation_requested_by_api_key_id_api_key")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation")),
        sa.UniqueConstraint("subscription_id", "n", name=op.f("uq_cancellation_subscription_id_n")),
    )

    op.create_table(
        "subscription_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False, comment="business key: written once"),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("term_no", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_api_key_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_subscription_event_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_event")),
        sa.UniqueConstraint("key", name=op.f("uq_subscription_event_key")),
    )
    op.create_index(op.f("ix_subscription_event_subscription_id"), "subscription_event", ["subscription_id"])

    with op.batch_alter_table("order_") as batch:
        batch.add_column(
            sa.Column(
                "subscription_start",
                sa.Date(),
                nullable=True,
                comment="a subscription taken over from another system: the first day of its first term there",
            )
        )
    with op.batch_alter_table("license") as batch:
        batch.add_column(
            sa.Column("subscription_id", sa.Uuid(), nullable=True, comment="set for a subscription product's licenses")
        )
        batch.create_foreign_key(
            op.f("fk_license_subscription_id_subscription"), "subscription", ["subscription_id"], ["id"]
        )
        batch.create_index(op.f("ix_license_subscription_id"), ["subscription_id"])


def downgrade() -> None:
    with op.batch_alter_table("license") as batch:
        batch.drop_index(op.f("ix_license_subscription_id"))
        batch.drop_constraint(op.f("fk_license_subscription_id_subscription"), type_="foreignkey")
        batch.drop_column("subscription_id")
    with op.batch_alter_table("order_") as batch:
        batch.drop_column("subscription_start")
    op.drop_table("subscription_event")
    op.drop_table("cancellation")
    op.drop_table("subscription_term")
    op.drop_table("subscription")
