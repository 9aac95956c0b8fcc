"""The `schedules:` of the `report` process in workflows.yaml: when each report kind runs, in which format.

Pure: imported by the workflow code and the process schema alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tessera.schema_base import StrictModel

DAY_HELP = "Day D of the month, 1-31; past a month's end the run happens on its last day."


class ReportSchedule(StrictModel):
    """A monthly run on day D at a local time of the vendor's time zone."""

    day: Annotated[int, Field(ge=1, le=31, strict=True, description=DAY_HELP)]
    time: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, vendor's time.")] = (
        "06:00"
    )
    format: Annotated[str, Field(min_length=1, max_length=64, description="csv, json, html or a template's name.")] = (
        "csv"
    )
    paused: bool = Field(default=False, description="Keep the Schedule but let it not run.")

    @property
    def hour(self) -> int:
        return int(self.time[:2])

    @property
    def minute(self) -> int:
        return int(self.time[3:])


class ReportSchedules(StrictModel):
    """Renewals run on day D for the month before; active subscriptions on day D for day D itself."""

    renewals: ReportSchedule | None = None
    active_subscriptions: ReportSchedule | None = None

    def items(self) -> list[tuple[str, ReportSchedule]]:
        found = [("renewals", self.renewals), ("active-subscriptions", self.active_subscriptions)]
        return [(kind, schedule) for kind, schedule in found if schedule is not None]


def schedule_problems(schedules: ReportSchedules | None, reports_dir: Path) -> list[tuple[tuple[str, ...], str]]:
    """(path, message) for each schedule naming a format that does not exist."""
    from tessera.reports.templates import format_names

    if schedules is None:
        return []
    names = format_names(reports_dir)
    problems: list[tuple[tuple[str, ...], str]] = []
    for key in ("renewals", "active_subscriptions"):
        schedule: ReportSchedule | None = getattr(schedules, key)
        if schedule is not None and schedule.format not in names:
            message = f"no report format {schedule.format!r}; choose one of: {', '.join(names)}"
            problems.append((("report", "schedules", key, "format"), message))
    return problems
