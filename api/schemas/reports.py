"""Recorded billing reports as the API shows them."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field


class CurrencyTotal(BaseModel):
    currency: str
    rows: int
    net_amount: str = Field(description="A decimal string; never summed across currencies.")


class ReportRead(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="`renewals` or `active-subscriptions`.")
    period: str = Field(description="`YYYY-MM` (a renewal month) or `YYYY-MM-DD` (day D).")
    scope: str = Field(description="`all`, or the id of the reseller it covers.")
    period_from: date
    period_to: date = Field(description="Exclusive.")
    format: str
    file_name: str
    sha256: str | None = Field(description="Of the file, as `GET /reports/{id}` sends it.")
    size: int | None
    row_count: int | None
    totals: list[CurrencyTotal]
    workflow_id: str | None
    created_at: datetime
