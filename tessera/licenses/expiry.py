"""A license's technical expiry (`expires_at`), from its product's kind and the catalog's expiry settings.

perpetual: none. trial: the number of days in the order's field that the product names (`trial_days_field`), or
a fixed `duration`. time_limited: the product's `duration` (e.g. P1Y). subscription: none here; its terms set it.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from tessera.durations import Duration, parse_duration
from tessera.errors import InvalidInput


class ExpiryUnknown(InvalidInput):
    """The catalog does not say how long a license of this product runs."""

    code = "license-expiry-unknown"
    title = "License expiry unknown"


def add_duration(start: datetime, duration: Duration) -> datetime:
    """`start` plus a calendar duration; a day the month lacks becomes its last day (Jan 31 + P1M: Feb 28/29)."""
    months = start.month - 1 + duration.months + 12 * duration.years
    year, month = start.year + months // 12, months % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day) + timedelta(days=duration.days, seconds=duration.seconds)


def license_expiry(
    product_code: str, kind: str, settings: dict[str, Any] | None, fields: dict[str, Any], created_at: datetime
) -> datetime | None:
    """When a license created at `created_at` with these field values stops working technically."""
    settings = settings or {}
    if kind == "trial":
        field = settings.get("trial_days_field")
        if isinstance(field, str):
            days = fields.get(field)
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                raise ExpiryUnknown(f"the order gives no trial length in days in its field {field!r}")
            return created_at + timedelta(days=days)
    if kind in ("trial", "time_limited"):
        duration = settings.get("duration")
        if not isinstance(duration, str):
            setting = "trial_days_field or duration" if kind == "trial" else "duration"
            raise ExpiryUnknown(f"the catalog gives {kind} product {product_code} no {setting}")
        return add_duration(created_at, parse_duration(duration))
    return None
