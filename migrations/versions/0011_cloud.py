"""cloud containers, the devices that reach them, and lost-device recoveries

Revision ID: 0011_cloud
Revises: 0010_activation
Create Date: 2026-12-01 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_cloud"
down_revision: str | None = "0010_activation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False, comment: str | None = None) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def upgrade() -> None:
    op.create_table(
        "cloud_container",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True, comment="the owner; empty for an organization's container"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credential_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "credential_version", sa.String(length=16), nullable=False, comment="version of the secret behind the hash"
        ),
        sa.Column("credential_generation", sa.Integer(), nullable=False),
        _instant("credential_rotated_at"),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_api_key_id", sa.Uuid(), nullable=True),
        _instant("deleted_at", nullable=True, comment="a deleted container keeps its row for the history"),
        _instant("created_at"),
        _instant("updated_at"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_cloud_container_organization_id_organization")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], name=op.f("fk_cloud_container_user_id_user_account")),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_cloud_container_created_by_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_api_key_id"],
            ["api_key.id"],
            name=op.f("fk_cloud_container_created_by_api_key_id_api_key"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_container")),
        sa.UniqueConstraint("credential_hash", name=op.f("uq_cloud_container_credential_hash")),
    )
    op.create_index(op.f("ix_cloud_container_organization_id"), "cloud_container", ["organization_id"])
    op.create_index(op.f("ix_cloud_container_user_id"), "cloud_container", ["user_id"])
    op.create_table(
        "cloud_device",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(length=200), nullable=False),
        _instant("first_seen_at"),
        _instant("last_seen_at"),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["cloud_container.id"],
            name=op.f("fk_cloud_device_container_id_cloud_container"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_device")),
        sa.UniqueConstraint("container_id", "device_id", name=op.f("uq_cloud_device_container_id_device_id")),
    )
    op.create_table(
        "activation_recovery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("activation_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by_api_key_id", sa.Uuid(), nullable=True),
        _instant("ended_at", nullable=True),
        _instant("created_at"),
        _instant("updated_at"),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activation.id"], name=op.f("fk_activation_recovery_activation_id_activation")
        ),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"], name=op.f("fk_activation_recovery_ticket_id_ticket")),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_activation_recovery_requested_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_api_key_id"],
            ["api_key.id"],
            name=op.f("fk_activation_recovery_requested_by_api_key_id_api_key"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activation_recovery")),
        sa.UniqueConstraint("activation_id", name=op.f("uq_activation_recovery_activation_id")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_activation_recovery_workflow_id")),
    )
    op.create_index(op.f("ix_activation_recovery_ticket_id"), "activation_recovery", ["ticket_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_activation_recovery_ticket_id"), table_name="activation_recovery")
    op.drop_table("activation_recovery")
    op.drop_table("cloud_device")
    op.drop_index(op.f("ix_cloud_container_user_id"), table_name="cloud_container")
    op.drop_index(op.f("ix_cloud_container_organization_id"), table_name="cloud_container")
    op.drop_table("cloud_container")
