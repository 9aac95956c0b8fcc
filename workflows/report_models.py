"""Payloads of the report workflows and activities (pure: passed through the sandbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tessera.processes import ResolvedProcess


class ReportWorkflowInput(BaseModel):
    kind: Literal["renewals", "active-subscriptions"]
    period: str = Field(description="YYYY-MM for renewals (the month billed), YYYY-MM-DD for active (day D).")
    format: str = "csv"
    process: ResolvedProcess


class ReportScheduleInput(BaseModel):
    """What a report kind's Schedule starts each time it fires: the period follows from the scheduled time."""

    kind: Literal["renewals", "active-subscriptions"]
    day: int = Field(ge=1, le=31)
    format: str = "csv"
    process: ResolvedProcess


class PeriodInput(BaseModel):
    kind: Literal["renewals", "active-subscriptions"]
    day: int
    at: datetime


class PeriodResult(BaseModel):
    period: str | None = Field(description="None: the scheduled time is not day D in the vendor's time zone.")


class GenerateInput(BaseModel):
    kind: Literal["renewals", "active-subscriptions"]
    period: str
    format: str
    workflow_id: str


class CurrencyTotal(BaseModel):
    currency: str
    rows: int
    net_amount: str


class GenerateResult(BaseModel):
    report_id: str
    kind: str
    period: str
    file: str
    sha256: str
    row_count: int
    totals: list[CurrencyTotal]
    created: bool


class ReportStepInput(BaseModel):
    """A notify or webhook step of a report (or its `report.generated` event); `key` makes its outbox row unique."""

    report_id: str
    key: str
    kind: Literal["notify", "webhook"]
    template: str | None = None
    source: str | None = None
    translations: dict[str, str] = Field(default_factory=dict)
    to: list[str] = Field(default_factory=list)
    event: str | None = None


class ReportWorkflowResult(BaseModel):
    report: GenerateResult
    trail: list[dict[str, str]] = Field(default_factory=list)


class ReportScheduleResult(BaseModel):
    outcome: Literal["started", "not_day_d", "already_reported"]
    workflow_id: str | None = None
