"""first activations: the hand-over of a pending subscription's first activation to its workflow

Revision ID: 0015_first_activation
Revises: 0014_password_resets
Create Date: 2026-12-01 20:40:00.000000

Subscriptions still pending although one of their licenses was activated (a signal that never reached their
workflow) get their first activation recorded here, unsignalled: the worker's relay then hands it on.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_first_activation"
down_revision: str | None = "0014_password_resets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    first_activation = op.create_table(
        "first_activation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("activation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "activated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="the instant the subscription's anchor is taken from",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "signalled_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Temporal took the signal, or the subscription no longer waited; null: the relay sends it",
        ),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activation.id"], name=op.f("fk_first_activation_activation_id_activation")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscription.id"], name=op.f("fk_first_activation_subscription_id_subscription")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_first_activation")),
        sa.UniqueConstraint("subscription_id", name=op.f("uq_first_activation_subscription_id")),
    )
    assert first_activation is not None
    with op.batch_alter_table("first_activation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_first_activation_signalled_at"), ["signalled_at"], unique=False)
    _record_missed_first_activations(first_activation)


def _record_missed_first_activations(first_activation: sa.Table) -> None:
    subscription = sa.table("subscription", sa.column("id", sa.Uuid()), sa.column("status", sa.String()))
    license = sa.table("license", sa.column("id", sa.Uuid()), sa.column("subscription_id", sa.Uuid()))
    activation = sa.table(
        "activation",
        sa.column("id", sa.Uuid()),
        sa.column("license_id", sa.Uuid()),
        sa.column("activated_at", sa.DateTime(timezone=True)),
    )
    rows = op.get_bind().execute(
        sa.select(subscription.c.id, activation.c.id, activation.c.activated_at)
        .join(license, license.c.subscription_id == subscription.c.id)
        .join(activation, activation.c.license_id == license.c.id)
        .where(subscription.c.status == "pending")
        .order_by(subscription.c.id, activation.c.activated_at, activation.c.id)
    )
    first: dict[uuid.UUID, dict[str, object]] = {}
    for subscription_id, activation_id, activated_at in rows:
        first.setdefault(
            subscription_id,
            {
                "id": uuid.uuid4(),
                "subscription_id": subscription_id,
                "activation_id": activation_id,
                "activated_at": activated_at,
                "created_at": activated_at,
            },
        )
    if first:
        op.bulk_insert(first_activation, list(first.values()))


def downgrade() -> None:
    with op.batch_alter_table("first_activation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_first_activation_signalled_at"))
    op.drop_table("first_activation")
