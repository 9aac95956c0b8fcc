"""billing lines: each billable term's report cells, written when it becomes billable; filled for existing terms

Revision ID: 0016_billing_lines
Revises: 0015_first_activation
Create Date: 2026-12-01 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_billing_lines"
down_revision: str | None = "0015_first_activation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_line",
        sa.Column("term_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("term_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "organization_id", sa.Uuid(), nullable=False, comment="who ordered: the report names its end customer"
        ),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=True, comment="the subscription's; its changes are looked up"),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("amount", sa.Numeric(18, 4), nullable=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("zone", sa.String(64), nullable=False, comment="the vendor's time zone when the line was written"),
        sa.Column("renewal_head", sa.Text(), nullable=False, comment="REN-subscription-term_no,renewal"),
        sa.Column("reseller_cell", sa.Text(), nullable=False, comment="reseller_id as a cell, '' for a direct sale"),
        sa.Column("committed_on_cell", sa.Text(), nullable=False, comment="the commitment's day in `zone`"),
        sa.Column("subscription_cells", sa.Text(), nullable=False, comment="subscription_id,term_no"),
        sa.Column(
            "renewal_cells",
            sa.Text(),
            nullable=False,
            comment="quantity,previous_first_day,previous_valid_through,first_day,valid_through",
        ),
        sa.Column("active_cells", sa.Text(), nullable=False, comment="quantity,first_day,valid_through"),
        sa.Column("first_day_cell", sa.Text(), nullable=False),
        sa.Column("price_cells", sa.Text(), nullable=False, comment="currency,unit_price,net_amount,external_ref"),
        sa.Column(
            "written_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="when the term became billable here: a renewal written late is billed by a later run",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_billing_line_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["term_id"],
            ["subscription_term.id"],
            name=op.f("fk_billing_line_term_id_subscription_term"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("term_id", name=op.f("pk_billing_line")),
    )
    op.create_index(op.f("ix_billing_line_ends_at"), "billing_line", ["ends_at"])
    op.create_index("ix_billing_line_kind_starts_at", "billing_line", ["kind", "starts_at"])
    op.create_index(op.f("ix_billing_line_written_at"), "billing_line", ["written_at"])
    _fill()


def _fill() -> None:
    """Lines for the terms that already bill, built by the same code that writes them from now on."""
    # Imported here, not at the top: the rules of today's code are what the lines must hold.
    from tessera.models import SubscriptionTerm
    from tessera.reports.lines import WRITE_BATCH, billable, line_source, line_values, upsert

    bind = op.get_bind()
    ids = [row[0] for row in bind.execute(sa.select(SubscriptionTerm.id).where(billable(SubscriptionTerm)))]
    for start in range(0, len(ids), WRITE_BATCH):
        chunk = ids[start : start + WRITE_BATCH]
        rows = bind.execute(line_source().where(SubscriptionTerm.id.in_(chunk))).mappings().all()
        if rows:
            # Billable since they began (not since today): none of them is taken for a late renewal.
            values = [line_values(row, row["renewed_at"] or row["starts_at"]) for row in rows]
            bind.execute(upsert(bind.dialect.name), values)


def downgrade() -> None:
    op.drop_index(op.f("ix_billing_line_written_at"), table_name="billing_line")
    op.drop_index("ix_billing_line_kind_starts_at", table_name="billing_line")
    op.drop_index(op.f("ix_billing_line_ends_at"), table_name="billing_line")
    op.drop_table("billing_line")
