"""e-mail delivery of outbox notifications: dispatch, claim, hand-over and outcome per row

Rows written before this revision were never meant to be mailed: they are marked `skipped`, so switching SMTP
on later does not send old messages (and expired invitation links) to anyone.

Revision ID: 0009_email
Revises: 0006
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_email"
down_revision: str | None = "0008_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("email_dispatched_at", sa.DateTime(timezone=True), "its EmailDeliveryWorkflow was started"),
    ("email_claimed_at", sa.DateTime(timezone=True), "start of the sending attempt's lease"),
    ("email_claim_token", sa.String(length=64), "which attempt holds the claim"),
    ("email_handed_over_at", sa.DateTime(timezone=True), "the message's data went to the server"),
    ("email_sent_at", sa.DateTime(timezone=True), None),
    ("email_outcome", sa.String(length=16), "sent | unconfirmed | refused | skipped"),
    ("email_message_id", sa.String(length=320), None),
    ("email_last_error", sa.Text(), None),
)


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        for name, kind, comment in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True, comment=comment))
        batch.add_column(sa.Column("email_send_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_event_email_pending", ["kind", "email_dispatched_at", "created_at"])
    op.execute(
        "UPDATE event SET email_outcome = 'skipped', email_dispatched_at = created_at, "
        "email_last_error = 'written before e-mail was sent; not mailed' WHERE kind = 'notification'"
    )


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_index("ix_event_email_pending")
        batch.drop_column("email_send_attempts")
        for name, _kind, _comment in reversed(COLUMNS):
            batch.drop_column(name)
