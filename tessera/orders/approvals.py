"""Which waiting orders a person may decide: the approvers of the step each order waits at, read as the workflow
reads them when a decision arrives (`tessera.licenses.fulfilment.approvers`), and the four-eyes rule of its step.

The step an order waits at is the last approval entry of its mirrored trail (`started`, or `escalated` when the
timeout handed it on); its approvers come from the steps the workflow runs, which the caller supplies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.licenses import fulfilment
from tessera.models import Order, OrderStatus, Product
from tessera.orders.reads import order_filter
from tessera.principal import Principal
from tessera.processes import ResolvedProcess
from tessera.processes.steps import ApprovalStep

WAITING_OUTCOMES = {"started": False, "escalated": True}
"""Trail outcomes of an approval that waits now, and whether its escalation approvers are the ones asked."""


@dataclass(frozen=True)
class Waiting:
    """The approval an order waits at."""

    step: ApprovalStep
    escalated: bool

    @property
    def approvers(self) -> str | Sequence[str]:
        asked = self.step.escalate_to if self.escalated and self.step.escalate_to is not None else self.step.approvers
        return asked if isinstance(asked, list) else str(asked.value)


def waiting_at(order: Order, process: ResolvedProcess) -> Waiting | None:
    """The approval step the order waits at, from its trail; None when it waits at none."""
    if order.status != OrderStatus.pending_approval:
        return None
    last = next((entry for entry in reversed(order.trail) if entry.get("kind") == "approval"), None)
    if last is None or last.get("outcome") not in WAITING_OUTCOMES:
        return None
    step = next((s for s in process.steps if isinstance(s, ApprovalStep) and s.label == last.get("step")), None)
    return Waiting(step, WAITING_OUTCOMES[str(last["outcome"])]) if step is not None else None


async def pending_orders(session: AsyncSession, principal: Principal, *, limit: int = 200) -> list[tuple[Order, str]]:
    """Orders within reach that wait for an approval, oldest first, with their product codes."""
    rows = await session.execute(
        select(Order, Product.code)
        .join(Product, Product.id == Order.product_id)
        .where(Order.status == OrderStatus.pending_approval, order_filter(principal))
        .order_by(Order.created_at, Order.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows.all()]


async def may_decide(session: AsyncSession, principal: Principal, order: Order, waiting: Waiting) -> bool:
    """Whether the person could decide the approval now: among its approvers, and not its requester unless allowed."""
    if principal.user_id is None:
        return False
    if order.requested_by_user_id == principal.user_id and not waiting.step.allow_self_approval:
        return False
    users = await fulfilment.approvers(session, order.id, waiting.approvers)
    return principal.user_id in {user.id for user in users}
