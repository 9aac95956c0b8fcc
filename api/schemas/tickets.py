"""Ticket bodies. Codes travel only in bodies, never in URLs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from tessera.models import TicketStatus, Visibility
from tessera.schema_base import StrictModel


class TicketRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    license_id: uuid.UUID
    organization_id: uuid.UUID
    allocated_user_id: uuid.UUID | None
    visibility: Visibility
    status: TicketStatus
    created_at: datetime
    updated_at: datetime


class TicketUpdate(StrictModel):
    """Re-allocate (to a member by name, or to an organization within the license's) or change visibility."""

    organization_id: uuid.UUID | None = None
    allocated_user_id: uuid.UUID | None = Field(default=None, description="null allocates to the organization.")
    visibility: Visibility | None = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class TicketLookup(StrictModel):
    code: str = Field(min_length=1, max_length=64, description="The ticket code, with or without hyphens.")


class TicketCode(StrictModel):
    code: str
