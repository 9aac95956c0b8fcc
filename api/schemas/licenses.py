"""License bodies; a license's ticket appears without its code."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from api.schemas.orders import TicketSummary
from tessera.models import LicenseStatus
from tessera.schema_base import StrictModel


class LicenseRead(StrictModel):
    id: uuid.UUID
    order_id: uuid.UUID
    line_no: int
    product: str
    organization_id: uuid.UUID
    fields: dict[str, Any]
    modules: list[str]
    status: LicenseStatus
    expires_at: datetime | None
    ticket: TicketSummary | None
    created_at: datetime
    updated_at: datetime
