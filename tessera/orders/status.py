"""The status of an order: one enum for the database, the API and the order workflow.

Pure on purpose: the workflow imports it through the sandbox, so it must not import anything with I/O.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """`pending_approval → approved → fulfilled`, or `rejected`, `failed`; `accepted` comes first."""

    accepted = "accepted"
    """Stored and handed to its workflow, which has not decided anything yet."""
    pending_approval = "pending_approval"
    approved = "approved"
    fulfilled = "fulfilled"
    rejected = "rejected"
    failed = "failed"
