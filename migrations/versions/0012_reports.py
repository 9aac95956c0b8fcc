"""billing reports: recorded runs, the renewals each run billed or reversed, reseller changes; report indexes

Revision ID: 0012_reports
Revises: 0009_email
Create Date: 2026-12-01 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_reports"
down_revision: str | None = "0011_cloud"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("period", sa.String(32), nullable=False, comment="YYYY-MM for renewals, YYYY-MM-DD for active"),
        sa.Column("scope", sa.String(40), nullable=False, comment="'all', or the reseller's id"),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False, comment="exclusive; the day after `on` for active reports"),
        sa.Column("format", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(300), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True, comment="of the file; empty until it is written"),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("totals", sa.JSON(), nullable=False, comment="per currency: rows and net amount"),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report")),
        sa.UniqueConstraint("kind", "period", "scope", name=op.f("uq_report_kind_period_scope")),
    )
    op.create_index(op.f("ix_report_created_at"), "report", ["created_at"])
    op.create_table(
        "reported_renewal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_term_id", sa.Uuid(), nullable=False),
        sa.Column("row_kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=True, comment="as billed: negative for a reversal"),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_reported_renewal_report_id_report"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subscription_term_id"],
            ["subscription_term.id"],
            name=op.f("fk_reported_renewal_subscription_term_id_subscription_term"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reported_renewal")),
        sa.UniqueConstraint(
            "subscription_term_id", "row_kind", name=op.f("uq_reported_renewal_subscription_term_id_row_kind")
        ),
    )
    op.create_index(op.f("ix_reported_renewal_report_id"), "reported_renewal", ["report_id"])
    op.create_table(
        "reseller_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_reseller_change_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["organization.id"], name=op.f("fk_reseller_change_reseller_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reseller_change")),
    )
    op.create_index("ix_reseller_change_subscription_at", "reseller_change", ["subscription_id", "at"])
    op.create_index("ix_subscription_term_kind_starts_at", "subscription_term", ["kind", "starts_at"])
    op.create_index("ix_term_ends_at", "subscription_term", ["ends_at"])
    op.create_index("ix_subscription_revoked_at", "subscription", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_subscription_revoked_at", table_name="subscription")
    op.drop_index("ix_term_ends_at", table_name="subscription_term")
    op.drop_index("ix_subscription_term_kind_starts_at", table_name="subscription_term")
    op.drop_table("reseller_change")
    op.drop_table("reported_renewal")
    op.drop_table("report")
