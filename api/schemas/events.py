"""Outbox entries: notifications rendered by `notify` steps and events published by `webhook` steps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from tessera.models import EventKind
from tessera.schema_base import StrictModel


class EventRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    kind: EventKind
    name: str
    organization_id: uuid.UUID | None
    order_id: uuid.UUID | None
    recipients: list[str] = Field(
        description="Addresses of the recipients the caller may see: users within its reach (vendor admins: all)."
    )
    recipients_hidden: int = Field(default=0, description="How many further recipients are not shown to the caller.")
    subject: str
    body: str
    payload: dict[str, Any]
    created_at: datetime
