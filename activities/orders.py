"""Activities of the license order workflow: thin wrappers, one unit of work each, idempotent by business key.

Business failures (a TesseraError such as a missing row, a template that no longer renders) are raised as
non-retryable ApplicationErrors: retrying cannot fix them, and the workflow records the reason and fails the order
instead of stalling it. Anything else (a database that is briefly away) is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tessera.db import unit_of_work
from tessera.email.locales import DEFAULT_LOCALE, translated_name, translations
from tessera.email.recipients import by_language
from tessera.errors import TesseraError
from tessera.licenses import fulfilment
from tessera.models import EventKind, License, User
from tessera.notifications import render, render_source, template_environment, write_event
from tessera.orders.errors import StepFailed
from tessera.orders.facts import order_context
from workflows.order_models import (
    AllocateInput,
    ApplyInput,
    ApproversInput,
    ApproversResult,
    CreatedLicenses,
    FailInput,
    NotifyInput,
    OrderRef,
    PublishInput,
    VisibilityInput,
)


@asynccontextmanager
async def business_failures() -> AsyncIterator[None]:
    """Turn the domain's own errors into failures Temporal does not retry."""
    try:
        yield
    except TesseraError as error:
        raise ApplicationError(error.detail, type=error.code, non_retryable=True) from None


FulfilledHook = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]
"""Called after an order's fulfilment is committed: the worker starts a subscription order's subscription."""


class OrderActivities:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        templates_dir: Path,
        portal_url: str,
        on_fulfilled: FulfilledHook | None = None,
    ) -> None:
        self._sessions = session_factory
        self._secret_key = secret_key
        self._templates = template_environment(templates_dir)
        self._templates_dir = templates_dir
        self._portal_url = portal_url
        self._on_fulfilled = on_fulfilled

    @activity.defn(name="orders.apply")
    async def apply(self, request: ApplyInput) -> None:
        """Allocation, visibility, notifications and events of one order, then its state, in one transaction.

        Idempotent: allocation and visibility set values, outbox rows are keyed by (order, step, position), and
        the state overwrites itself. The state is written first, so an event published with it (e.g.
        order.fulfilled) carries the status it announces.
        """
        order_id = uuid.UUID(request.order_id)
        async with business_failures(), unit_of_work(self._sessions) as session:
            if request.state is not None:
                trail = [entry.model_dump(mode="json") for entry in request.state.trail]
                await fulfilment.record_progress(session, order_id, request.state.status, trail)
            for action in request.actions:
                if isinstance(action, AllocateInput):
                    await fulfilment.allocate_order_tickets(session, order_id, action.to.value)
                elif isinstance(action, VisibilityInput):
                    await fulfilment.set_order_visibility(session, order_id, action.visible_to.value)
                elif isinstance(action, NotifyInput):
                    await self._notify(session, order_id, action)
                else:
                    await self._publish(session, order_id, action)
        if self._on_fulfilled is not None and request.state is not None and request.state.status == "fulfilled":
            # After the commit, so the subscription's workflow reads it; a retry of this activity starts it again,
            # which finds the same run (its id is the subscription's).
            async with self._sessions() as session:
                await self._on_fulfilled(session, order_id)

    @activity.defn(name="orders.fail")
    async def fail(self, request: FailInput) -> None:
        """A failed order: state, revoked licenses and tickets, quota back, one order.failed event; key: the order."""
        order_id = uuid.UUID(request.order_id)
        async with business_failures(), unit_of_work(self._sessions) as session:
            trail = [entry.model_dump(mode="json") for entry in request.state.trail]
            await fulfilment.record_progress(session, order_id, request.state.status, trail)
            revoked = await fulfilment.revoke_order_licenses(session, order_id)
            await fulfilment.release_order_quota(session, order_id)
            order = await fulfilment.load_order(session, order_id)
            await write_event(
                session,
                key=f"order-{order_id}:failed",
                kind=EventKind.webhook,
                name="order.failed",
                organization_id=order.organization_id,
                order_id=order_id,
                payload={
                    "order_id": str(order_id),
                    "status": order.status,
                    "external_ref": order.external_ref,
                    "reason": request.reason,
                    "revoked_license_ids": [str(license_id) for license_id in revoked],
                },
            )

    @activity.defn(name="orders.approvers")
    async def approvers(self, request: ApproversInput) -> ApproversResult:
        """Who may decide this approval now; read-only."""
        approver_set = request.approvers if isinstance(request.approvers, list) else request.approvers.value
        async with business_failures(), self._sessions() as session:
            users = await fulfilment.approvers(session, uuid.UUID(request.order_id), approver_set)
        return ApproversResult(user_ids=[str(user.id) for user in users], emails=[user.email for user in users])

    @activity.defn(name="orders.release_quota")
    async def release_quota(self, ref: OrderRef) -> None:
        """Give back reserved quota; key: the order (its quota_released_at is set once)."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            await fulfilment.release_order_quota(session, uuid.UUID(ref.order_id))

    @activity.defn(name="licenses.create")
    async def create_licenses(self, ref: OrderRef) -> CreatedLicenses:
        """N licenses and N tickets, committed per chunk; key: (order, line number), so a retry never creates more.

        Heartbeat details are the lines done: a retry (another worker, after a crash) resumes after them.
        """
        order_id = uuid.UUID(ref.order_id)
        details = activity.info().heartbeat_details
        done = int(details[0]) if details and isinstance(details[0], int) else 0
        async with business_failures():
            while True:
                async with unit_of_work(self._sessions) as session:
                    order = await fulfilment.load_order(session, order_id)
                    quantity = order.quantity
                    if done >= quantity:
                        break
                    done = await fulfilment.create_order_license_chunk(session, self._secret_key, order_id, done)
                activity.heartbeat(done)
            async with self._sessions() as session:
                count = await fulfilment.count_order_licenses(session, order_id)
        return CreatedLicenses(count=count)

    async def _notify(self, session: AsyncSession, order_id: uuid.UUID, request: NotifyInput) -> None:
        """Render a template into the outbox; key: order + step key, so a retry writes one row."""
        order = await fulfilment.load_order(session, order_id)
        context = await order_context(session, order)
        licenses = await fulfilment.order_licenses(session, order_id)
        variables: dict[str, Any] = {
            **context.model_dump(mode="json"),
            "licenses": [{"id": str(lic.id), "expires_at": _iso(lic)} for lic in licenses],
            "portal_url": self._portal_url,
        }
        if request.approval_step is not None:
            variables["approval"] = {
                "name": request.approval_step,
                "approvers": request.to,
                "deadline": request.approval_deadline.isoformat() if request.approval_deadline else "",
                "escalated": request.escalated,
            }
        step = request.key.rsplit(":", 1)[0]
        recipients = await self._recipients(session, order.requested_by_user_id, order_id, request.to)
        groups = await self._by_language(session, order.organization_id, request, recipients)
        for locale, group in groups.items():
            # The English row keeps the key it always had; each translation adds its locale to it.
            suffix = f":{locale}" if locale is not None else ""
            try:
                if request.source is not None:
                    source = request.translations[locale] if locale is not None else request.source
                    name = translated_name(locale, request.template) if locale is not None else request.template
                    subject, body = render_source(name, source, variables)
                else:
                    name = translated_name(locale, request.template) if locale is not None else request.template
                    subject, body = render(self._templates, name, variables)
            except TemplateError as error:
                raise StepFailed(f"step {step!r}: template {name!r} does not render: {error}") from None
            await write_event(
                session,
                key=f"order-{order_id}:{request.key}{suffix}",
                kind=EventKind.notification,
                name=request.template,
                organization_id=order.organization_id,
                order_id=order_id,
                recipients=group,
                subject=subject,
                body=body,
                payload={"locale": locale or DEFAULT_LOCALE},
            )

    async def _by_language(
        self, session: AsyncSession, organization_id: uuid.UUID, request: NotifyInput, recipients: list[str]
    ) -> dict[str | None, list[str]]:
        """Recipients grouped by the translation they read (None: English)."""
        if request.source is not None:
            available = list(request.translations)
        else:  # a run started before texts travelled with it: the files as they are now
            available = list(translations(self._templates_dir, request.template))
        return await by_language(session, organization_id, recipients, available)

    async def _recipients(
        self, session: AsyncSession, requester_id: uuid.UUID | None, order_id: uuid.UUID, to: list[str]
    ) -> list[str]:
        emails: list[str] = []
        for recipient in to:
            if "@" in recipient:
                emails.append(recipient)
            elif recipient == "requester":
                requester = await session.get(User, requester_id) if requester_id else None
                emails += [requester.email] if requester else []
            else:
                emails += [user.email for user in await fulfilment.approvers(session, order_id, recipient)]
        return sorted(set(emails))

    async def _publish(self, session: AsyncSession, order_id: uuid.UUID, request: PublishInput) -> None:
        """Publish an event for webhook subscribers; key: order + step key."""
        order = await fulfilment.load_order(session, order_id)
        licenses = await fulfilment.order_licenses(session, order_id)
        await write_event(
            session,
            key=f"order-{order_id}:{request.key}",
            kind=EventKind.webhook,
            name=request.event,
            organization_id=order.organization_id,
            order_id=order_id,
            payload={
                "order_id": str(order_id),
                "status": order.status,
                "external_ref": order.external_ref,
                "license_ids": [str(lic.id) for lic in licenses],
            },
        )

    def all(self) -> list[Any]:
        return [self.apply, self.fail, self.approvers, self.release_quota, self.create_licenses]


def _iso(license: License) -> str:
    return license.expires_at.isoformat() if license.expires_at else ""
