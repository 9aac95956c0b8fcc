"""Lost-device recovery bodies: ids and statuses only."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from tessera.activation.recovery_models import RecoveryStatus
from tessera.schema_base import StrictModel


class RecoveryRead(StrictModel):
    id: uuid.UUID
    activation_id: uuid.UUID
    workflow_id: str = Field(description="recovery-<activation id>")
    status: RecoveryStatus = Field(
        description="pending (lock period or approval running), recovered, rejected, or superseded (the activation "
        "was returned before the recovery ended)."
    )
    created_at: datetime
    ended_at: datetime | None
