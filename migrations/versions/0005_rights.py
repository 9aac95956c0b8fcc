"""rights: external_ref unique per top-level organization, ticket audit trail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The scope of an order's external_ref: the organization directly below the root on its path (the root itself
# for the vendor's own orders). Portable SQL: a recursive walk up from each order's organization.
_BACKFILL = """
WITH RECURSIVE up(order_id, org_id, parent_id, depth) AS (
    SELECT o.id, org.id, org.parent_id, 0
    FROM order_ o JOIN organization org ON org.id = o.organization_id
    WHERE o.external_ref IS NOT NULL
    UNION ALL
    SELECT up.order_id, org.id, org.parent_id, up.depth + 1
    FROM up JOIN organization org ON org.id = up.parent_id
    WHERE up.depth < 64
)
UPDATE order_ SET external_ref_scope_id = (
    SELECT COALESCE(
        (SELECT child.org_id FROM up child JOIN up root ON root.order_id = child.order_id
         WHERE child.order_id = order_.id AND root.parent_id IS NULL AND child.depth = root.depth - 1),
        order_.organization_id)
)
WHERE external_ref IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "ticket_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_user_id", sa.Uuid(), nullable=True, comment="who held it by name before"),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_api_key_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_event")),
    )
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_event_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_event_ticket_id"), ["ticket_id"], unique=False)

    with op.batch_alter_table("order_", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "external_ref_scope_id",
                sa.Uuid(),
                nullable=True,
                comment="the top-level organization below the vendor whose ERP namespace external_ref belongs to",
            )
        )
    op.execute(_BACKFILL)
    with op.batch_alter_table("order_", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_order__external_ref"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_order__external_ref_scope_id_external_ref"), ["external_ref_scope_id", "external_ref"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_order__external_ref_scope_id_organization"),
            "organization",
            ["external_ref_scope_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("order_", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_order__external_ref_scope_id_organization"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_order__external_ref_scope_id_external_ref"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_order__external_ref"), ["external_ref"])
        batch_op.drop_column("external_ref_scope_id")

    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_event_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_event_organization_id"))

    op.drop_table("ticket_event")
