"""Payloads of EmailDeliveryWorkflow and its activity (pure models: passed through the sandbox)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EmailInput(BaseModel):
    event_id: str = Field(description="The outbox row (kind notification) to send.")


class EmailResult(BaseModel):
    event_id: str
    outcome: str = Field(description="sent, unconfirmed, refused or skipped (see tessera/email/state.py).")
    message_id: str | None = None
