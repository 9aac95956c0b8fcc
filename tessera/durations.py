"""ISO 8601 durations as analysts write them (`P1Y`, `P1M`, `P365D`, `PT48H`).

Years, months and days are kept apart on purpose: `P1M` and `P30D` are different units for the date rules,
so a duration is never flattened into seconds unless it has no calendar part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_PATTERN = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    seconds: int = 0

    @property
    def has_calendar_part(self) -> bool:
        return bool(self.years or self.months)

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.seconds)

    def to_timedelta(self) -> timedelta:
        """Exact length; only for durations without years or months, whose length depends on the date."""
        if self.has_calendar_part:
            raise ValueError("a duration with years or months has no fixed length")
        return timedelta(days=self.days, seconds=self.seconds)

    def approximate_days(self) -> float:
        """For comparing durations of different units in configuration checks only."""
        return self.years * 365.25 + self.months * 30.44 + self.days + self.seconds / 86400


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration; raise ValueError with an example of the accepted form."""
    match = _PATTERN.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (examples: P1Y, P1M, P30D, PT48H)")
    parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    return Duration(
        years=parts.get("years", 0),
        months=parts.get("months", 0),
        days=parts.get("days", 0) + 7 * parts.get("weeks", 0),
        seconds=parts.get("hours", 0) * 3600 + parts.get("minutes", 0) * 60 + parts.get("seconds", 0),
    )
