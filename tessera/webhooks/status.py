"""Statuses of endpoints and deliveries: one enum each for the database, the API and the workflow (pure)."""

from __future__ import annotations

from enum import StrEnum


class EndpointStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


class DeliveryStatus(StrEnum):
    pending = "pending"
    """Started; no attempt has succeeded yet and retries go on."""
    delivered = "delivered"
    failed = "failed"
    """Given up: refused by the receiver (4xx), out of retry time, or the endpoint was disabled or deleted."""
