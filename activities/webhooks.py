"""The webhook attempt activity: send once, record what happened and decide what comes next.

Idempotent on (delivery, attempt): a delivery already recorded as delivered or failed is not sent again, and
delivered is set once by a conditional update. An attempt repeated after a crash may send the same event again
(at least once, with the same `webhook-id`, for receivers to de-duplicate on), but never records it twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.orders import business_failures
from tessera.db import unit_of_work
from tessera.notifications import template_environment
from tessera.settings import Settings
from tessera.webhooks import attempts
from tessera.webhooks.sender import SendPolicy, new_client, send
from workflows.webhook_models import AttemptInput, AttemptResult


def send_policy(settings: Settings) -> SendPolicy:
    return SendPolicy(
        allow_loopback=settings.webhook_allow_http_loopback,
        allowed_networks=tuple(settings.webhook_allowed_networks),
        connect_timeout=settings.webhook_connect_timeout_seconds,
        total_timeout=settings.webhook_timeout_seconds,
        max_response_bytes=settings.webhook_max_response_bytes,
    )


class WebhookActivities:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        templates_dir: Path,
        portal_url: str,
        policy: SendPolicy,
        retry_for: timedelta,
    ) -> None:
        self._sessions = session_factory
        self._secret_key = secret_key
        self._templates = template_environment(templates_dir)
        self._portal_url = portal_url
        self._policy = policy
        self._retry_for = retry_for
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> WebhookActivities:
        return cls(
            session_factory,
            settings.resolved_secret_key(),
            settings.config_dir / "templates",
            settings.portal_url,
            send_policy(settings),
            settings.webhook_retry_for,
        )

    def _http(self) -> httpx.AsyncClient:
        # Made lazily, inside the worker's event loop.
        if self._client is None:
            self._client = new_client()
        return self._client

    @activity.defn(name="webhooks.attempt")
    async def attempt(self, request: AttemptInput) -> AttemptResult:
        """Send the event once, record the attempt, decide: delivered, failed, or wait and retry; key: the delivery."""
        delivery_id = uuid.UUID(request.delivery_id)
        async with business_failures():
            async with unit_of_work(self._sessions) as session:
                prepared = await attempts.prepare(session, self._secret_key, delivery_id, datetime.now(UTC))
            if isinstance(prepared, attempts.Finished):
                return AttemptResult(status=prepared.status, status_code=prepared.status_code, error=prepared.error)
            result = await send(self._http(), prepared.url, prepared.body, prepared.headers, self._policy)
            async with unit_of_work(self._sessions) as session:
                decision = await attempts.record(
                    session,
                    self._templates,
                    delivery_id=delivery_id,
                    attempt=request.attempt,
                    result=result,
                    planned_delay=request.planned_delay_seconds,
                    remaining=request.remaining_seconds,
                    retry_after_max=request.retry_after_max_seconds,
                    retry_for=self._retry_for,
                    now=datetime.now(UTC),
                    portal_url=self._portal_url,
                )
        return AttemptResult(
            status=decision.status,
            status_code=result.status_code,
            error=decision.error or result.error,
            next_delay_seconds=decision.next_delay_seconds,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def all(self) -> list[Any]:
        return [self.attempt]
