"""Activities of the subscription, cancellation and revocation workflows; thin, idempotent by business key.

Instants (`at`) come from the workflow's clock, so a time-skipped test and a replay record the same moments.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.orders import business_failures
from activities.subscription_outbox import SubscriptionOutbox
from tessera.activation import handover
from tessera.db import unit_of_work
from tessera.licenses import fulfilment
from tessera.models import (
    Cancellation,
    CancellationStatus,
    SubscriptionStatus,
)
from tessera.notifications import template_environment
from tessera.processes import ConditionContext
from tessera.processes.schema import ProcessName, WorkflowsConfig
from tessera.subscriptions import service
from tessera.subscriptions.creation import record
from tessera.subscriptions.facts import resolve_for, subscription_context
from tessera.subscriptions.terms import Term
from workflows.subscription_models import (
    BeginResult,
    CancellationRef,
    ProcessInput,
    ProcessResult,
    RenewAction,
    RenewResult,
    RevokeInput,
    StepInput,
    SubscriptionSnapshot,
    TermEndInput,
    TermEndOutcome,
    TermEndResult,
    TermInfo,
    TermRef,
)


def term_info(term: Term | None) -> TermInfo | None:
    return None if term is None else TermInfo.model_validate(term.model_dump())


class SubscriptionActivities:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        templates_dir: Path,
        portal_url: str,
        workflows_config: Callable[[], WorkflowsConfig],
    ) -> None:
        self._sessions = session_factory
        self._secret_key = secret_key
        self._outbox = SubscriptionOutbox(template_environment(templates_dir), portal_url)
        self._config = workflows_config

    @activity.defn(name="subscriptions.snapshot")
    async def snapshot(self, ref: TermRef) -> SubscriptionSnapshot:
        """Where the subscription stands (status, current term, cancellation, commitment); read-only."""
        async with business_failures(), self._sessions() as session:
            return await self._snapshot(session, uuid.UUID(ref.subscription_id))

    async def _snapshot(self, session: AsyncSession, subscription_id: uuid.UUID) -> SubscriptionSnapshot:
        found = await service.snapshot(session, subscription_id)
        subscription = await service.load(session, subscription_id)
        pending = found.status == SubscriptionStatus.pending
        return SubscriptionSnapshot(
            status=found.status.value,
            term=term_info(found.term),
            cancellation_term_no=found.cancellation_term_no,
            cancellation_applied=found.cancellation_applied,
            committed=found.committed,
            quantity=subscription.quantity,
            first_activated_at=await handover.first_activated_at(session, subscription_id) if pending else None,
        )

    @activity.defn(name="subscriptions.activate")
    async def activate(self, ref: TermRef) -> SubscriptionSnapshot:
        """Fix the anchor at the first activation; key: the subscription (pending only once).

        The recorded first activation gives the instant, whichever signal (the API's, the relay's) or read woke
        the workflow; `at` (the signal's) only where none is recorded.
        """
        assert ref.at is not None
        subscription_id = uuid.UUID(ref.subscription_id)
        async with business_failures(), unit_of_work(self._sessions) as session:
            at = await handover.first_activated_at(session, subscription_id) or ref.at
            await service.activate(session, subscription_id, at)
            return await self._snapshot(session, subscription_id)

    @activity.defn(name="subscriptions.resolve")
    async def resolve(self, request: ProcessInput) -> ProcessResult:
        """The process's steps as workflows.yaml says now, with the facts its conditions see; read-only."""
        async with business_failures(), self._sessions() as session:
            subscription = await service.load(session, uuid.UUID(request.subscription_id))
            context = await subscription_context(session, subscription)
            process = resolve_for(self._config(), ProcessName(request.process), context)
        return ProcessResult(process=process, facts=context)

    @activity.defn(name="subscriptions.commit")
    async def commit(self, ref: TermRef) -> bool:
        """At the notice deadline: the next term becomes binding unless cancelled; key: (subscription, term + 1)."""
        assert ref.at is not None
        async with business_failures(), unit_of_work(self._sessions) as session:
            return await service.commit(session, uuid.UUID(ref.subscription_id), ref.term_no, ref.at)

    @activity.defn(name="subscriptions.term_end")
    async def term_end(self, ref: TermRef) -> TermEndResult:
        """What the end of the term means now: renew, expire, wait for a decision, or nothing; read-only."""
        async with business_failures(), self._sessions() as session:
            outcome = await service.term_end(session, uuid.UUID(ref.subscription_id), ref.term_no)
        return TermEndResult(outcome=outcome.value)

    @activity.defn(name="subscriptions.renew")
    async def renew(self, ref: TermRef) -> RenewResult:
        """The effective renewal into term `term_no`; key: (subscription, term_no)."""
        assert ref.at is not None
        async with business_failures(), unit_of_work(self._sessions) as session:
            term = await service.renew(session, self._secret_key, uuid.UUID(ref.subscription_id), ref.term_no, ref.at)
        return RenewResult(term=term_info(term))

    @activity.defn(name="subscriptions.expire")
    async def expire(self, ref: TermRef) -> None:
        """The effective end: the subscription and its licenses expire, subscription.expired is published; once."""
        assert ref.at is not None
        subscription_id = uuid.UUID(ref.subscription_id)
        async with business_failures(), unit_of_work(self._sessions) as session:
            if await service.expire(session, subscription_id, ref.at):
                subscription = await service.load(session, subscription_id)
                order = await fulfilment.load_order(session, subscription.order_id)
                key = f"subscription-{subscription_id}:expired"
                await self._outbox.event(session, order, subscription, key, "subscription.expired")

    @activity.defn(name="subscriptions.begin")
    async def begin(self, ref: TermRef) -> BeginResult:
        """A run's start: the subscription as it stands and the steps of its term, in one read."""
        subscription_id = uuid.UUID(ref.subscription_id)
        async with business_failures(), self._sessions() as session:
            snapshot = await self._snapshot(session, subscription_id)
            subscription = await service.load(session, subscription_id)
            context = await subscription_context(session, subscription)
            process = resolve_for(self._config(), ProcessName.subscription, context)
        return BeginResult(snapshot=snapshot, resolved=ProcessResult(process=process, facts=context))

    @activity.defn(name="subscriptions.end_term")
    async def end_term(self, request: TermEndInput) -> TermEndOutcome:
        """The end of a term in one transaction: renew (and its outbox steps), expire, or wait for a decision.

        Idempotent like its parts: the renewal is keyed by (subscription, term), outbox rows by their step keys.
        With `begin_next`, a renewal also answers what `subscriptions.begin` would read for the next term.
        """
        subscription_id = uuid.UUID(request.subscription_id)
        renewing = any(isinstance(action, RenewAction) for action in request.actions)
        async with business_failures(), unit_of_work(self._sessions) as session:
            decision = await service.end_term(
                session, self._secret_key, subscription_id, request.term_no, request.at, renewing=renewing
            )
            if decision.outcome == service.TermEnd.undecided:
                return TermEndOutcome(outcome="undecided")
            if decision.outcome == service.TermEnd.expire:
                if await service.expire(session, subscription_id, request.at):
                    subscription = await service.load(session, subscription_id)
                    order = await fulfilment.load_order(session, subscription.order_id)
                    key = f"subscription-{subscription_id}:expired"
                    await self._outbox.event(session, order, subscription, key, "subscription.expired")
                return TermEndOutcome(outcome="expired", snapshot=await self._snapshot(session, subscription_id))
            if decision.outcome == service.TermEnd.ended:
                return TermEndOutcome(outcome="ended", snapshot=await self._snapshot(session, subscription_id))
            subscription = await service.load(session, subscription_id)
            order = await fulfilment.load_order(session, subscription.order_id)
            # Read the subscription's facts once for every notify step and for the next term's begin.
            context: ConditionContext | None = None
            for action in request.actions:
                if isinstance(action, RenewAction):
                    continue
                if action.kind == "webhook":
                    assert action.event is not None
                    await self._outbox.event(session, order, subscription, action.key, action.event, action.variables)
                    continue
                if action.requester_user_id is None:
                    context = context or await subscription_context(session, subscription)
                await self._outbox.notify(session, order, subscription, action, context)
            begun = None
            if request.begin_next and decision.term is not None:
                context = context or await subscription_context(session, subscription)
                process = resolve_for(self._config(), ProcessName.subscription, context)
                begun = BeginResult(
                    snapshot=await self._snapshot(session, subscription_id),
                    resolved=ProcessResult(process=process, facts=context),
                )
            return TermEndOutcome(outcome="renewed", term=term_info(decision.term), begun=begun)

    @activity.defn(name="subscriptions.apply_cancellation")
    async def apply_cancellation(self, ref: CancellationRef) -> str:
        """The cancel step: a requested cancellation takes hold (non-renewing); key: the cancellation."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            cancellation = await session.get(Cancellation, uuid.UUID(ref.cancellation_id))
            if cancellation is None:
                return "missing"
            subscription = await service.load(session, cancellation.subscription_id, lock=True)
            await session.refresh(cancellation)
            if cancellation.status != CancellationStatus.requested:
                return cancellation.status
            if subscription.status not in service.LIVE:
                cancellation.status = CancellationStatus.withdrawn
                return cancellation.status
            cancellation.status = CancellationStatus.applied
            cancellation.decided_at = ref.at
            subscription.status = SubscriptionStatus.non_renewing
            subscription.effective_end_at = cancellation.effective_end_at
            await record(
                session,
                subscription,
                "cancelled",
                key=f"{subscription.id}:cancellation:{cancellation.n}:applied",
                term_no=cancellation.effective_term_no,
                detail={"effective_end_at": cancellation.effective_end_at.isoformat(), "n": cancellation.n},
            )
            return cancellation.status

    @activity.defn(name="subscriptions.reject_cancellation")
    async def reject_cancellation(self, ref: CancellationRef) -> str:
        """A cancellation whose approval was refused: the subscription renews as before; key: the cancellation."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            cancellation = await session.get(Cancellation, uuid.UUID(ref.cancellation_id))
            if cancellation is None:
                return "missing"
            subscription = await service.load(session, cancellation.subscription_id, lock=True)
            await session.refresh(cancellation)
            if cancellation.status == CancellationStatus.requested:
                cancellation.status = CancellationStatus.rejected
                cancellation.decided_at = ref.at
                await record(
                    session,
                    subscription,
                    "cancellation_rejected",
                    key=f"{subscription.id}:cancellation:{cancellation.n}:rejected",
                    detail={"n": cancellation.n},
                )
            return cancellation.status

    @activity.defn(name="revocations.revoke")
    async def revoke(self, request: RevokeInput) -> list[str]:
        """The revoke step: a subscription with all its licenses, or one license; key: the target (once)."""
        at = request.at or datetime.now().astimezone()
        requester = uuid.UUID(request.requester_user_id) if request.requester_user_id else None
        async with business_failures(), unit_of_work(self._sessions) as session:
            if request.target == "subscription":
                ids = await service.revoke(
                    session, uuid.UUID(request.target_id), at, reason=request.reason, actor_user_id=requester
                )
                return [str(license_id) for license_id in ids]
            license_id = uuid.UUID(request.target_id)
            await fulfilment.revoke_licenses(session, [license_id])
            return [request.target_id]

    @activity.defn(name="subscriptions.step")
    async def step(self, request: StepInput) -> None:
        """A notify or webhook step of a subscription process into the outbox; key: the step's key."""
        async with business_failures(), unit_of_work(self._sessions) as session:
            subscription = (
                await service.load(session, uuid.UUID(request.subscription_id)) if request.subscription_id else None
            )
            order = await fulfilment.load_order(session, uuid.UUID(request.order_id))
            if request.kind == "webhook":
                assert request.event is not None
                await self._outbox.event(session, order, subscription, request.key, request.event, request.variables)
            else:
                await self._outbox.notify(session, order, subscription, request)

    def all(self) -> list[Any]:
        return [
            self.snapshot,
            self.begin,
            self.end_term,
            self.activate,
            self.resolve,
            self.commit,
            self.term_end,
            self.renew,
            self.expire,
            self.apply_cancellation,
            self.reject_cancellation,
            self.revoke,
            self.step,
        ]
