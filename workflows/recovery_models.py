"""Payloads of the lost-device recovery workflow and its activities (no workflow code, so the API imports them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tessera.processes import ConditionContext, ResolvedProcess

RECOVERED = "recovered"
"""The activation status the `recover` step leaves: its refresh answers `revoked`, its slot is free."""


class RecoveryWorkflowInput(BaseModel):
    """Ids only: the activation's secret, the ticket's code and people's names never travel here."""

    recovery_id: str
    activation_id: str
    license_id: str
    order_id: str
    organization_id: str = Field(description="The ticket's organization (search attribute TesseraCustomer).")
    product_code: str
    reseller_id: str | None = None
    summary: str = Field(description="In words, for operators: ids only.")
    process: ResolvedProcess
    facts: ConditionContext
    requester_user_id: str | None = None


class RecoveryRef(BaseModel):
    recovery_id: str
    at: datetime | None = Field(default=None, description="The workflow's clock: when the step happens.")
