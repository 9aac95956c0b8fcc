"""product expiry settings: how long trial and time-limited licenses run

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("product") as batch:
        batch.add_column(
            sa.Column(
                "expiry",
                sa.JSON(),
                nullable=True,
                comment="trial_days_field and/or duration: how long a trial or time-limited license runs",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("product") as batch:
        batch.drop_column("expiry")
