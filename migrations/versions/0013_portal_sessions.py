"""portal sessions: an API key's kind (`key` for the API, `session` for a signed-in portal cookie)

Revision ID: 0013_portal_sessions
Revises: 0012_reports
Create Date: 2026-12-01 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_portal_sessions"
down_revision: str | None = "0012_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="key"))


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("kind")
