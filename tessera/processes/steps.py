"""The step kinds of `config/workflows.yaml`, one model each, told apart by `kind`.

These models check only the shape of one step. Checks that need more than the step (does the template exist,
does the condition compile, is the step allowed in this process) live in `checks.py`, so that a resolved step
list read back from a workflow's input validates without the config directory at hand.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from tessera.durations import parse_duration
from tessera.schema_base import StrictModel

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class ApproverSet(StrEnum):
    """Who may decide an approval, relative to the order's target organization."""

    group_admins = "group_admins"
    reseller_admins = "reseller_admins"
    vendor_admins = "vendor_admins"


class RecipientRole(StrEnum):
    requester = "requester"
    group_admins = "group_admins"
    reseller_admins = "reseller_admins"
    vendor_admins = "vendor_admins"


class OnTimeout(StrEnum):
    approve = "approve"
    reject = "reject"
    escalate = "escalate"


class AllocateTo(StrEnum):
    requester = "requester"
    organization = "organization"
    user = "user"
    as_ordered = "as_ordered"


class VisibleTo(StrEnum):
    all_members = "all_members"
    admins_only = "admins_only"
    as_ordered = "as_ordered"


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def _email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value.lower()


def _approvers(value: object) -> object:
    # One clear message instead of pydantic's report on every member of the union.
    if isinstance(value, str) and "@" not in value:
        if value not in ApproverSet.__members__:
            raise ValueError(
                f"unknown approver set {value!r}; choose {_choices(ApproverSet)}, or a list of e-mail addresses"
            )
        return value
    users = [value] if isinstance(value, str) else value
    if not isinstance(users, list) or not users:
        raise ValueError(f"choose {_choices(ApproverSet)}, or a non-empty list of e-mail addresses")
    emails = [_email(user) for user in users]
    if len(set(emails)) != len(emails):
        raise ValueError("an approver is listed twice")
    return emails


def _recipients(value: object) -> object:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"give a list of recipients: {_choices(RecipientRole)}, or e-mail addresses")
    for item in items:
        if not isinstance(item, str) or ("@" not in item and item not in RecipientRole.__members__):
            raise ValueError(f"unknown recipient {item!r}; choose {_choices(RecipientRole)}, or an e-mail address")
        if "@" in item:
            _email(item)
    if len(set(items)) != len(items):
        raise ValueError("a recipient is listed twice")
    return [item.lower() if "@" in item else item for item in items]


def _fixed_duration(value: str) -> str:
    # Timers need an exact length; "one month" depends on the date the timer starts.
    duration = parse_duration(value)
    if duration.has_calendar_part:
        raise ValueError(f"{value!r} has no fixed length: use weeks, days or hours (e.g. P30D, PT12H)")
    if duration.is_zero:
        raise ValueError(f"{value!r} is zero: give a positive duration such as P3D")
    return value.strip().upper()


def _event(value: str) -> str:
    if not _EVENT.match(value):
        raise ValueError(f"{value!r} is not an event name: lower-case words joined by dots, e.g. order.fulfilled")
    return value


def _expression(value: str) -> str:
    if not value.strip():
        raise ValueError("the condition is empty: write e.g. order.quantity > 10, or leave `when` out")
    return value


Approvers = Annotated[ApproverSet | list[str], BeforeValidator(_approvers)]
Recipients = Annotated[list[str], BeforeValidator(_recipients)]
FixedDuration = Annotated[str, Field(strict=True), AfterValidator(_fixed_duration)]
"""An ISO 8601 duration with an exact length (`P3D`, `PT12H`); never zero."""
Condition = Annotated[str, Field(strict=True), AfterValidator(_expression)]
"""A CEL expression; compiled and type-checked against the process's roots by `checks.py`."""
StepName = Annotated[str, Field(strict=True, min_length=1, max_length=80, pattern=r"^\S(.*\S)?$")]


def to_timedelta(duration: str) -> timedelta:
    """The exact length of a validated `FixedDuration`."""
    return parse_duration(duration).to_timedelta()


def _describe_approvers(approvers: ApproverSet | list[str]) -> str:
    if isinstance(approvers, ApproverSet):
        return approvers.value.replace("_", " ")
    return " or ".join(approvers)


class StepBase(StrictModel):
    name: StepName | None = Field(default=None, description="Shown in the order's trail; names must be unique.")
    when: Condition | None = Field(default=None, description="Run the step only if this condition is true.")

    @property
    def label(self) -> str:
        """The step's name in the trail and in overrides: its `name`, or else its kind."""
        return self.name or str(getattr(self, "kind", "step"))

    def describe(self) -> str:
        return self.label

    def summary(self) -> str:
        """The step in words, led by its name when it has one."""
        return f"{self.name}: {self.describe()}" if self.name else self.describe()

    def _suffix(self) -> str:
        return f" when {self.when}" if self.when else ""


class ApprovalStep(StepBase):
    kind: Literal["approval"]
    approvers: Approvers
    timeout: FixedDuration
    on_timeout: OnTimeout = OnTimeout.reject
    escalate_to: Approvers | None = Field(
        default=None, description="With on_timeout: escalate; they get the same timeout, then it is rejected."
    )
    template: str = Field(
        default="approval_requested.txt.j2",
        strict=True,
        min_length=1,
        description="Sent to the approvers when the approval starts and again on escalation.",
    )
    allow_self_approval: bool = Field(
        default=False,
        strict=True,
        description="Let whoever requested the order decide it too; by default someone else must (four eyes).",
    )

    def describe(self) -> str:
        text = f"approval by {_describe_approvers(self.approvers)}{self._suffix()}; after {self.timeout}: "
        if self.on_timeout == OnTimeout.escalate and self.escalate_to is not None:
            text += f"escalate to {_describe_approvers(self.escalate_to)} (rejected after another {self.timeout})"
        else:
            text += "approved" if self.on_timeout == OnTimeout.approve else "rejected"
        return text + ("; the requester may decide too" if self.allow_self_approval else "")


class CreateLicenseStep(StepBase):
    kind: Literal["create_license"]

    def describe(self) -> str:
        return f"create one license and one ticket per unit ordered{self._suffix()}"


class AllocateStep(StepBase):
    kind: Literal["allocate"]
    to: AllocateTo = Field(description="`user` is the user named in the order; `as_ordered` follows the order.")

    def describe(self) -> str:
        if self.to == AllocateTo.as_ordered:
            return f"allocate the tickets as the order asks (requester, organization or user){self._suffix()}"
        return f"allocate the tickets to the {self.to.value.replace('_', ' ')}{self._suffix()}"


class VisibilityStep(StepBase):
    kind: Literal["visibility"]
    visible_to: VisibleTo

    def describe(self) -> str:
        if self.visible_to == VisibleTo.as_ordered:
            return f"make the tickets visible as the order asks (all members or admins only){self._suffix()}"
        return f"make the tickets visible to {self.visible_to.value.replace('_', ' ')}{self._suffix()}"


class NotifyStep(StepBase):
    kind: Literal["notify"]
    template: str = Field(strict=True, min_length=1, description="A file under config/templates/.")
    to: Recipients = Field(default_factory=lambda: [RecipientRole.requester.value])

    def describe(self) -> str:
        recipients = ", ".join(recipient.replace("_", " ") for recipient in self.to)
        return f"notify {recipients} with {self.template}{self._suffix()}"


class RenewStep(StepBase):
    kind: Literal["renew"]

    def describe(self) -> str:
        return f"renew the subscription for another term{self._suffix()}"


class CancelStep(StepBase):
    kind: Literal["cancel"]

    def describe(self) -> str:
        return f"cancel the subscription (it ends at its effective end){self._suffix()}"


class RevokeStep(StepBase):
    kind: Literal["revoke"]

    def describe(self) -> str:
        return f"revoke the license at once{self._suffix()}"


class RecoverStep(StepBase):
    kind: Literal["recover"]

    def describe(self) -> str:
        return f"free the lost activation's slot; its refresh answers revoked from then on{self._suffix()}"


class ReminderAnchor(StrEnum):
    cancel_deadline = "cancel_deadline"
    """The end of the last day to cancel: the moment the renewal becomes binding."""
    term_end = "term_end"


class ReminderStep(StepBase):
    """A notification sent while a term runs, `before` the deadline or the term's end (subscription only)."""

    kind: Literal["reminder"]
    before: FixedDuration = Field(description="How long before the anchor, e.g. P30D.")
    of: ReminderAnchor = Field(default=ReminderAnchor.cancel_deadline, description="cancel_deadline or term_end.")
    template: str = Field(strict=True, min_length=1, description="A file under config/templates/.")
    to: Recipients = Field(default_factory=lambda: [RecipientRole.group_admins.value])

    def describe(self) -> str:
        anchor = "the last day to cancel ends" if self.of == ReminderAnchor.cancel_deadline else "the term ends"
        recipients = ", ".join(recipient.replace("_", " ") for recipient in self.to)
        return f"remind {recipients} with {self.template} {self.before} before {anchor}{self._suffix()}"


class WaitStep(StepBase):
    kind: Literal["wait"]
    duration: FixedDuration

    def describe(self) -> str:
        return f"wait {self.duration}{self._suffix()}"


class WebhookStep(StepBase):
    kind: Literal["webhook"]
    event: Annotated[str, Field(strict=True), AfterValidator(_event)]

    def describe(self) -> str:
        return f"post the event {self.event} to webhook subscribers{self._suffix()}"


Step = Annotated[
    ApprovalStep
    | CreateLicenseStep
    | AllocateStep
    | VisibilityStep
    | NotifyStep
    | RenewStep
    | CancelStep
    | RevokeStep
    | RecoverStep
    | WaitStep
    | WebhookStep
    | ReminderStep,
    Field(discriminator="kind"),
]

STEP_KINDS: tuple[str, ...] = (
    "approval",
    "create_license",
    "allocate",
    "visibility",
    "notify",
    "renew",
    "cancel",
    "revoke",
    "recover",
    "wait",
    "webhook",
    "reminder",
)
