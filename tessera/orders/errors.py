"""The order intake's own problems, each with a stable code (rendered by `api/` like every TesseraError)."""

from __future__ import annotations

from tessera.errors import Conflict, Forbidden, TesseraError


class QuotaExceeded(Forbidden):
    """The grant used has too little quota left for this order."""

    code = "quota-exceeded"
    title = "Quota exceeded"


class WorkflowsConfigInvalid(TesseraError):
    """`workflows.yaml` (as edited now) is invalid: no order is accepted until it is fixed."""

    status = 503
    code = "workflows-config-invalid"
    title = "Workflow configuration invalid"


class WorkflowNotStarted(TesseraError):
    """The order is stored but its workflow could not be started (Temporal unreachable): retry later."""

    status = 503
    code = "workflow-not-started"
    title = "Workflow not started"


class WorkflowUnavailable(TesseraError):
    """Temporal did not answer a decision or a query."""

    status = 503
    code = "workflow-unavailable"
    title = "Workflow service unavailable"


class NotWaiting(Conflict):
    """A decision arrived while the order waits for none (never did, or was decided already)."""

    code = "order-not-waiting"
    title = "Order not waiting for a decision"


class NotAnApprover(Forbidden):
    """The caller is not among the approvers of the step the order waits at."""

    code = "not-an-approver"
    title = "Not an approver"


class StepFailed(TesseraError):
    """A step of an order cannot be carried out as configured (e.g. its template no longer renders)."""

    status = 422
    code = "step-failed"
    title = "Step failed"


class SelfApprovalNotAllowed(Forbidden):
    """The requester of an order tried to decide it, and its approval step does not allow that."""

    code = "self-approval-not-allowed"
    title = "Self-approval not allowed"
