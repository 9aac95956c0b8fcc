"""Activities of the license order workflow: thin wrappers, one unit of work each, idempotent by business key."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tessera.db import unit_of_work
from tessera.errors import NotFound
from tessera.licenses import fulfilment
from tessera.models import EventKind, License, User
from tessera.notifications import render, template_environment, write_event
from tessera.orders.facts import order_context
from workflows.order_models import (
    AllocateInput,
    ApplyInput,
    ApproversInput,
    ApproversResult,
    CreatedLicenses,
    NotifyInput,
    OrderRef,
    PublishInput,
    VisibilityInput,
)


def _business_failure(error: NotFound) -> ApplicationError:
    # Retrying cannot bring a deleted order back: fail the step at once and let the workflow record why.
    return ApplicationError(error.detail, type="not_found", non_retryable=True)


class OrderActivities:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], secret_key: bytes, templates_dir: Path, portal_url: str
    ) -> None:
        self._sessions = session_factory
        self._secret_key = secret_key
        self._templates = template_environment(templates_dir)
        self._portal_url = portal_url

    @activity.defn(name="orders.apply")
    async def apply(self, request: ApplyInput) -> None:
        """Allocation, visibility, notifications and events of one order, then its state, in one transaction.

        Idempotent: allocation and visibility set values, outbox rows are keyed by (order, step, position), and
        the state overwrites itself.
        """
        order_id = uuid.UUID(request.order_id)
        try:
            async with unit_of_work(self._sessions) as session:
                for action in request.actions:
                    if isinstance(action, AllocateInput):
                        await fulfilment.allocate_order_tickets(session, order_id, action.to.value)
                    elif isinstance(action, VisibilityInput):
                        await fulfilment.set_order_visibility(session, order_id, action.visible_to.value)
                    elif isinstance(action, NotifyInput):
                        await self._notify(session, order_id, action)
                    else:
                        await self._publish(session, order_id, action)
                if request.state is not None:
                    trail = [entry.model_dump(mode="json") for entry in request.state.trail]
                    await fulfilment.record_progress(session, order_id, request.state.status, trail)
        except NotFound as error:
            raise _business_failure(error) from None

    @activity.defn(name="orders.approvers")
    async def approvers(self, request: ApproversInput) -> ApproversResult:
        """Who may decide this approval now; read-only."""
        approver_set = request.approvers if isinstance(request.approvers, list) else request.approvers.value
        async with self._sessions() as session:
            users = await fulfilment.approvers(session, uuid.UUID(request.order_id), approver_set)
        return ApproversResult(user_ids=[str(user.id) for user in users], emails=[user.email for user in users])

    @activity.defn(name="orders.release_quota")
    async def release_quota(self, ref: OrderRef) -> None:
        """Give back reserved quota; key: the order (its quota_released_at is set once)."""
        async with unit_of_work(self._sessions) as session:
            await fulfilment.release_order_quota(session, uuid.UUID(ref.order_id))

    @activity.defn(name="licenses.create")
    async def create_licenses(self, ref: OrderRef) -> CreatedLicenses:
        """N licenses and N tickets; key: (order, line number), so a retry never creates more."""
        try:
            async with unit_of_work(self._sessions) as session:
                licenses = await fulfilment.create_order_licenses(
                    session, self._secret_key, uuid.UUID(ref.order_id), progress=lambda line: activity.heartbeat(line)
                )
                tickets = await fulfilment.order_tickets(session, uuid.UUID(ref.order_id))
        except NotFound as error:
            raise _business_failure(error) from None
        by_license = {ticket.license_id: ticket.id for ticket in tickets}
        return CreatedLicenses(
            license_ids=[str(lic.id) for lic in licenses],
            ticket_ids=[str(by_license[lic.id]) for lic in licenses],
        )

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
        subject, body = render(self._templates, request.template, variables)
        recipients = await self._recipients(session, order.requested_by_user_id, order_id, request.to)
        await write_event(
            session,
            key=f"order-{order_id}:{request.key}",
            kind=EventKind.notification,
            name=request.template,
            organization_id=order.organization_id,
            order_id=order_id,
            recipients=recipients,
            subject=subject,
            body=body,
        )

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
        return [self.apply, self.approvers, self.release_quota, self.create_licenses]


def _iso(license: License) -> str:
    return license.expires_at.isoformat() if license.expires_at else ""
