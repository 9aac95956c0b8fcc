"""The outbox rows of subscription steps: a webhook event, or a notice rendered per language for its readers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.email.locales import DEFAULT_LOCALE, translated_name
from tessera.email.recipients import by_language
from tessera.licenses import fulfilment
from tessera.models import EventKind, License, Order, Subscription, User
from tessera.notifications import render, render_source, write_event
from tessera.orders.errors import StepFailed
from tessera.orders.facts import order_context
from tessera.processes import ConditionContext
from tessera.subscriptions.facts import subscription_context
from workflows.subscription_models import StepInput


class SubscriptionOutbox:
    """Writes a step's outbox rows, idempotent on the step's key (one row per language for a notice)."""

    def __init__(self, templates: SandboxedEnvironment, portal_url: str) -> None:
        self._templates = templates
        self._portal_url = portal_url

    async def event(
        self,
        session: AsyncSession,
        order: Order,
        subscription: Subscription | None,
        key: str,
        name: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload: dict[str, Any] = {"order_id": str(order.id), "external_ref": order.external_ref, **(extra or {})}
        if subscription is not None:
            licenses = (
                await session.scalars(
                    select(License.id).where(License.subscription_id == subscription.id).order_by(License.line_no)
                )
            ).all()
            payload |= {
                "subscription_id": str(subscription.id),
                "status": subscription.status,
                "term_no": subscription.term_no,
                "valid_through": _iso(subscription.valid_through),
                "effective_end_at": _iso(subscription.effective_end_at),
                "quantity": subscription.quantity,
                "license_ids": [str(license_id) for license_id in licenses],
            }
        await write_event(
            session,
            key=key,
            kind=EventKind.webhook,
            name=name,
            organization_id=order.organization_id,
            order_id=order.id,
            payload=payload,
        )

    async def notify(
        self,
        session: AsyncSession,
        order: Order,
        subscription: Subscription | None,
        request: StepInput,
        context: ConditionContext | None = None,
    ) -> None:
        """`context`: the subscription's facts when the caller read them already (no requester of its own)."""
        assert request.template is not None
        requester = uuid.UUID(request.requester_user_id) if request.requester_user_id else None
        if context is None:
            if subscription is not None:
                context = await subscription_context(session, subscription, requester)
            else:
                context = await order_context(session, order)
        variables: dict[str, Any] = {
            **context.model_dump(mode="json"),
            "portal_url": self._portal_url,
            "effective_end": request.variables.get("effective_end", ""),
            "license": {
                "id": request.variables.get("license_id", ""),
                "status": request.variables.get("license_status", ""),
            },
        }
        if subscription is not None:
            variables["renewal"] = {
                "term_start": _iso(subscription.term_starts_at),
                "term_end": _iso(subscription.valid_through),
                "unit_price": "" if subscription.unit_price is None else str(subscription.unit_price),
                "currency": subscription.currency or "",
            }
            variables["reminder"] = {
                "name": request.variables.get("reminder", ""),
                "of": request.variables.get("of", ""),
                "at": request.variables.get("at", ""),
                "last_day_to_cancel": _iso(subscription.last_day_to_cancel),
                "valid_through": _iso(subscription.valid_through),
            }
        step = request.key.rsplit(":", 1)[-1]
        assert context.organization is not None
        path = [uuid.UUID(org) for org in (context.organization.id, *context.organization.ancestor_ids)]
        recipients = await self._recipients(session, order, requester, request.to, path)
        available = list(request.translations) if request.source is not None else []
        for locale, group in (await by_language(session, order.organization_id, recipients, available)).items():
            # The English row keeps the step's key; each translation adds its locale to it.
            name = translated_name(locale, request.template) if locale is not None else request.template
            try:
                if request.source is not None:
                    source = request.translations[locale] if locale is not None else request.source
                    subject, body = render_source(name, source, variables)
                else:
                    subject, body = render(self._templates, name, variables)
            except TemplateError as error:
                raise StepFailed(f"step {step!r}: template {name!r} does not render: {error}") from None
            await write_event(
                session,
                key=f"{request.key}:{locale}" if locale is not None else request.key,
                kind=EventKind.notification,
                name=request.template,
                organization_id=order.organization_id,
                order_id=order.id,
                recipients=group,
                subject=subject,
                body=body,
                payload={"locale": locale or DEFAULT_LOCALE},
            )

    async def _recipients(
        self, session: AsyncSession, order: Order, requester: uuid.UUID | None, to: list[str], path: list[uuid.UUID]
    ) -> list[str]:
        emails: list[str] = []
        for recipient in to:
            if "@" in recipient:
                emails.append(recipient)
            elif recipient == "requester":
                user_id = requester or order.requested_by_user_id
                user = await session.get(User, user_id) if user_id else None
                emails += [user.email] if user else []
            else:
                emails += [user.email for user in await fulfilment.approvers(session, order.id, recipient, path=path)]
        return sorted(set(emails))


def _iso(value: date | datetime | None) -> str:
    return value.isoformat() if value is not None else ""
