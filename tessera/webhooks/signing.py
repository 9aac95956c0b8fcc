"""The body and headers of a webhook, as the Standard Webhooks specification has them.

The body is the same bytes in every attempt (`{"id", "type", "timestamp", "data"}`); each attempt signs it
afresh with its own `webhook-timestamp`, since receivers refuse old timestamps. During a secret rotation's
overlap a delivery carries one `v1,...` signature per secret, separated by spaces, so a receiver holding either
secret verifies it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook


def event_body(event_id: str, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> bytes:
    document = {
        "id": event_id,
        "type": event_type,
        "timestamp": occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def signed_headers(event_id: str, body: bytes, secrets: Sequence[str], now: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` (one signature per secret, newest first)."""
    if not secrets:
        raise ValueError("a webhook is signed with at least one secret")
    at = now.astimezone(UTC)
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, at, text) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
