"""The workflow language: `config/workflows.yaml` as checked models, conditions, and resolved step lists.

No FastAPI and no Temporal here: the API resolves a step list with `resolve_steps` and hands the resulting
`ResolvedProcess` to a workflow, whose interpreter walks its steps and calls `evaluate` for each `when`.
"""

from tessera.processes.checks import CatalogCodes
from tessera.processes.conditions import ConditionError, evaluate
from tessera.processes.facts import (
    ConditionContext,
    OrderFacts,
    OrganizationFacts,
    ProductFacts,
    RequesterFacts,
    SubscriptionFacts,
)
from tessera.processes.loader import load_workflows, parse_workflows
from tessera.processes.resolve import ResolvedProcess, resolve_steps
from tessera.processes.schema import Override, OverrideMatch, ProcessName, ProcessSpec, WorkflowsConfig
from tessera.processes.steps import (
    AllocateStep,
    ApprovalStep,
    ApproverSet,
    CancelStep,
    CreateLicenseStep,
    NotifyStep,
    OnTimeout,
    RecoverStep,
    ReminderAnchor,
    ReminderStep,
    RenewStep,
    RevokeStep,
    Step,
    VisibilityStep,
    WaitStep,
    WebhookStep,
    to_timedelta,
)

__all__ = [
    "AllocateStep",
    "ApprovalStep",
    "ApproverSet",
    "CancelStep",
    "CatalogCodes",
    "ConditionContext",
    "ConditionError",
    "CreateLicenseStep",
    "NotifyStep",
    "OnTimeout",
    "OrderFacts",
    "OrganizationFacts",
    "Override",
    "OverrideMatch",
    "ProcessName",
    "ProcessSpec",
    "ProductFacts",
    "RecoverStep",
    "ReminderAnchor",
    "ReminderStep",
    "RenewStep",
    "RequesterFacts",
    "ResolvedProcess",
    "RevokeStep",
    "Step",
    "SubscriptionFacts",
    "VisibilityStep",
    "WaitStep",
    "WebhookStep",
    "WorkflowsConfig",
    "evaluate",
    "load_workflows",
    "parse_workflows",
    "resolve_steps",
    "to_timedelta",
]
