"""The whole of `config/workflows.yaml`: per process, its steps and the overrides that adapt them.

An override names the orders it applies to (`match:` by product group, product or organization) and says
what changes for them: `replace_steps` (a whole new list), or `remove_steps` and/or `add_steps` (placed
`before:` or `after:` a named step, else at the end). Overrides apply in file order, each to the result of the
previous one, so the file reads top to bottom like the order's story.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PrivateAttr

from tessera.processes.steps import (
    ApprovalStep,
    NotifyStep,
    RecoverStep,
    ReminderStep,
    Step,
    StepName,
    WaitStep,
)
from tessera.reports.schedule_config import ReportSchedules
from tessera.schema_base import Code, StrictModel


class ProcessName(StrEnum):
    license_order = "license_order"
    subscription = "subscription"
    cancellation = "cancellation"
    revocation = "revocation"
    report = "report"
    recovery = "recovery"


OrganizationId = Annotated[
    str,
    Field(
        strict=True,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="An organization's id (a UUID, as the API shows it).",
    ),
]


class OverrideMatch(StrictModel):
    """All given criteria must hold; within one criterion any listed value will do."""

    product_groups: list[Code] = Field(default_factory=list)
    products: list[Code] = Field(default_factory=list)
    organizations: list[OrganizationId] = Field(
        default_factory=list, description="Matches the order's organization and everything below it."
    )

    def is_empty(self) -> bool:
        return not (self.product_groups or self.products or self.organizations)

    def matches(self, *, product_group: str | None, product: str | None, organization_ids: set[str]) -> bool:
        if self.product_groups and product_group not in self.product_groups:
            return False
        if self.products and product not in self.products:
            return False
        return not self.organizations or bool(organization_ids & {org.lower() for org in self.organizations})

    def describe(self) -> str:
        parts = [
            f"{label} {', '.join(values)}"
            for label, values in (
                ("product group", self.product_groups),
                ("product", self.products),
                ("organization (and below)", self.organizations),
            )
            if values
        ]
        return " and ".join(parts) or "every order"


class Override(StrictModel):
    name: StepName = Field(description="Shown in the order's trail, so operators see why its steps differ.")
    match: OverrideMatch
    replace_steps: list[Step] | None = None
    remove_steps: list[str] = Field(default_factory=list, description="Names (or kinds) of steps to drop.")
    add_steps: list[Step] = Field(default_factory=list)
    before: str | None = Field(default=None, description="Put add_steps before the step with this name.")
    after: str | None = Field(default=None, description="Put add_steps after the step with this name.")

    def describe(self) -> str:
        if self.replace_steps is not None:
            return f"for {self.match.describe()}: replace all steps"
        changes = [f"remove {', '.join(self.remove_steps)}"] if self.remove_steps else []
        if self.add_steps:
            place = f"before {self.before}" if self.before else f"after {self.after}" if self.after else "at the end"
            changes.append(f"add {', '.join(step.label for step in self.add_steps)} {place}")
        return f"for {self.match.describe()}: {'; '.join(changes)}"


class ProcessSpec(StrictModel):
    steps: list[Step] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)


def default_recovery() -> ProcessSpec:
    """Recovery as it runs when the file does not list it (files written before it existed): a week's lock period."""
    return ProcessSpec(steps=[WaitStep(kind="wait", name="lock period", duration="P7D"), RecoverStep(kind="recover")])


class ReportProcessSpec(ProcessSpec):
    schedules: ReportSchedules | None = Field(default=None, description="When each report kind runs by itself.")


class WorkflowsConfig(StrictModel):
    """Every process must be listed (the file is the one place that says what each workflow does), except
    `recovery`, which came later: left out, it is a week's lock period, then the recovery."""

    license_order: ProcessSpec
    subscription: ProcessSpec
    cancellation: ProcessSpec
    revocation: ProcessSpec
    report: ReportProcessSpec
    recovery: ProcessSpec = Field(default_factory=default_recovery)

    _templates: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def templates(self) -> dict[str, str]:
        """Text of every template a step names (by file name), read when the file was loaded."""
        return self._templates

    def with_templates(self, templates: dict[str, str]) -> WorkflowsConfig:
        self._templates = dict(templates)
        return self

    def template_names(self) -> set[str]:
        """Every template a step names, in the steps and in the overrides' steps."""
        names: set[str] = set()
        for name in ProcessName:
            spec = self.process(name)
            steps = [*spec.steps, *(step for o in spec.overrides for step in [*(o.replace_steps or []), *o.add_steps])]
            names |= {step.template for step in steps if isinstance(step, ApprovalStep | NotifyStep | ReminderStep)}
        return names

    def process(self, name: ProcessName | str) -> ProcessSpec:
        spec: ProcessSpec = getattr(self, ProcessName(name).value)
        return spec

    def describe(self) -> list[str]:
        """The file in words: per process one line per step, then its overrides."""
        lines: list[str] = []
        for name in ProcessName:
            spec = self.process(name)
            lines.append(f"{name.value}:")
            lines += [f"  {number}. {step.summary()}" for number, step in enumerate(spec.steps, start=1)]
            lines += [f"  override {override.name!r}: {override.describe()}" for override in spec.overrides]
        return lines

    def version_hash(self) -> str:
        """sha256 of the canonical JSON of the validated file and its templates: comments and layout do not count."""
        # The templates' text counts too: an edited template is a new version of what orders do.
        document = {**self.model_dump(mode="json"), "templates": self._templates} if self._templates else None
        canonical = json.dumps(document or self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
