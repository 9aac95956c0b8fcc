"""The event types Tessera can send to webhook endpoints, each with the JSON Schema of its payload.

A pure module (no database, no clock): `tessera workflows check` validates the `event` of every `webhook`
step against it, endpoints subscribe to these names, and `GET /api/v1/event-types` publishes the schemas.
A `webhook` step may name only the types its process can emit (`processes`); types with no process are
published by Tessera's own code (e.g. `order.failed`, written when an order fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_UUID = {"type": "string", "format": "uuid"}
_UUIDS = {"type": "array", "items": _UUID}
_NULLABLE_TEXT = {"type": ["string", "null"]}


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    data: dict[str, Any]
    """JSON Schema of the payload's `data` object."""
    processes: tuple[str, ...] = ()
    """Processes of workflows.yaml whose `webhook` steps may publish it."""
    after_core: bool = False
    """It announces what its process's core step does (create_license, renew, cancel, revoke), so a `webhook`
    step publishing it must come after that step; before it, receivers would hear of something that may never
    happen (an order rejected at its approval, a renewal that found the subscription ended)."""

    def schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12) of the whole body a receiver gets."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "required": ["id", "type", "timestamp", "data"],
            "additionalProperties": False,
            "properties": {
                "id": {**_UUID, "description": "The event id; the same in every retry (header webhook-id too)."},
                "type": {"const": self.name},
                "timestamp": {"type": "string", "format": "date-time", "description": "When the event happened."},
                "data": self.data,
            },
        }


def _data(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    # Receivers must ignore fields they do not know: later versions may add some, never remove or retype one.
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": True,
    }


_ORDER = {"order_id": _UUID, "status": {"type": "string"}, "external_ref": _NULLABLE_TEXT}
_SUBSCRIPTION = {"subscription_id": _UUID, "status": {"type": "string"}}
_SUBSCRIPTION_EXTRA = {
    "order_id": _UUID,
    "term_no": {"type": "integer", "minimum": 1},
    "license_ids": _UUIDS,
    "effective_end": {"type": "string", "format": "date-time"},
}

EVENT_TYPES: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType(
            "order.fulfilled",
            "An order's licenses and tickets exist (the license_order process's webhook step).",
            _data({**_ORDER, "license_ids": _UUIDS}),
            ("license_order",),
            after_core=True,
        ),
        EventType(
            "order.failed",
            "An order failed: its licenses were revoked and its quota given back; `reason` says why.",
            _data({**_ORDER, "reason": {"type": "string"}, "revoked_license_ids": _UUIDS}),
        ),
        EventType(
            "subscription.renewed",
            "A subscription entered its next term.",
            _data(_SUBSCRIPTION, _SUBSCRIPTION_EXTRA),
            ("subscription",),
            after_core=True,
        ),
        EventType(
            "subscription.cancelled",
            "A subscription was cancelled; `effective_end` is when it ends.",
            _data(_SUBSCRIPTION, _SUBSCRIPTION_EXTRA),
            ("cancellation",),
            after_core=True,
        ),
        EventType(
            "subscription.revoked",
            "A subscription was revoked: it ended at once, and its licenses with it.",
            _data(_SUBSCRIPTION, _SUBSCRIPTION_EXTRA),
            ("revocation",),
            after_core=True,
        ),
        EventType(
            "subscription.expired",
            "A subscription reached its effective end and expired.",
            _data(_SUBSCRIPTION, _SUBSCRIPTION_EXTRA),
            ("subscription",),
        ),
        EventType(
            "license.revoked",
            "A license was revoked; the software learns it at its next refresh.",
            _data({"license_id": _UUID, "status": {"type": "string"}}, {"order_id": _UUID}),
            ("revocation",),
            after_core=True,
        ),
        EventType(
            "report.generated",
            "A billing report was recorded and its file written (sent for every recorded report, by Tessera).",
            _data(
                {
                    "report_id": _UUID,
                    "kind": {"type": "string"},
                    "period": {"type": "string"},
                    "sha256": {"type": "string"},
                    "row_count": {"type": "integer"},
                },
                {
                    "format": {"type": "string"},
                    "file": {"type": "string"},
                    "url": {"type": "string"},
                    "totals": {"type": "array", "items": {"type": "object"}},
                },
            ),
        ),
        EventType(
            "report.ready",
            "A billing report was produced.",
            _data({"report_id": _UUID, "kind": {"type": "string"}}, {"period": {"type": "string"}}),
            ("report",),
        ),
    )
}


def known_event_types() -> list[str]:
    return sorted(EVENT_TYPES)


def announces_core_step(name: str) -> bool:
    event = EVENT_TYPES.get(name)
    return event is not None and event.after_core


def event_type_problem(name: str, process: str) -> str | None:
    """Why a `webhook` step of `process` may not publish `name`, or None."""
    event = EVENT_TYPES.get(name)
    if event is None:
        return f"unknown event type {name!r}; known: {', '.join(known_event_types())}"
    if process not in event.processes:
        fitting = ", ".join(sorted(n for n, e in EVENT_TYPES.items() if process in e.processes)) or "none"
        return f"{process} does not publish {name}; its event types: {fitting}"
    return None
