"""Liveness of the parts the API depends on."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import State
from api.schemas.common import HealthRead

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


@router.get(
    "/healthz",
    response_model=None,
    responses={
        200: {"model": HealthRead, "description": "The database and Temporal answer."},
        503: {"model": HealthRead, "description": "The database or Temporal does not answer."},
    },
)
async def healthz(state: State) -> JSONResponse:
    """Report whether the database and the Temporal server answer; 503 when either does not."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        async with state.session_factory() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), CHECK_TIMEOUT_SECONDS)
        checks["database"] = {"ok": True}
    except Exception as exc:  # any failure is the answer here, not an error of the endpoint
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        await asyncio.wait_for(
            state.temporal.workflow_service.get_system_info(GetSystemInfoRequest()), CHECK_TIMEOUT_SECONDS
        )
        checks["temporal"] = {"ok": True, "namespace": state.temporal.namespace}
    except Exception as exc:
        checks["temporal"] = {"ok": False, "error": type(exc).__name__}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", **checks}, status_code=200 if healthy else 503)
