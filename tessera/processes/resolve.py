"""The step list one workflow run follows, frozen at its start.

A workflow receives a `ResolvedProcess` in its input: the steps after overrides plus the version hash of the
file they came from. Editing `config/workflows.yaml` therefore changes only workflows started afterwards, and an
operator can tell from the hash which version of the file a run followed.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from tessera.email.locales import split_translated
from tessera.errors import ConfigError, FieldIssue
from tessera.processes.checks import apply_override, step_list_problems
from tessera.processes.schema import ProcessName, WorkflowsConfig
from tessera.processes.steps import ApprovalStep, NotifyStep, ReminderStep, Step


class ResolvedProcess(BaseModel):
    """Steps for one run; serializes to JSON and back unchanged (it travels in a workflow's input)."""

    process: ProcessName
    steps: list[Step]
    version: str = Field(description="sha256 of the canonical JSON of the validated workflows.yaml.")
    overrides: list[str] = Field(default_factory=list, description="Names of the overrides applied, in order.")
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="Text of every template the steps use, as it was when the run started: editing or deleting "
        "a template file changes only runs started afterwards.",
    )

    def describe(self) -> list[str]:
        """One line per step, in words."""
        return [f"{number}. {step.summary()}" for number, step in enumerate(self.steps, start=1)]


def resolve_steps(
    config: WorkflowsConfig,
    process: ProcessName | str,
    *,
    product_group: str | None = None,
    product: str | None = None,
    organization_ids: Iterable[str] = (),
) -> ResolvedProcess:
    """Apply, in file order, every override matching this product and these organizations.

    `organization_ids` are the order's organization and its ancestors, so an override naming a reseller
    applies to all its customers. Two overrides that contradict each other for one order (the first removes
    the step the second adds after) raise ConfigError naming them: the order is refused, not half-configured.
    """
    name = ProcessName(process)
    spec = config.process(name)
    organizations = {str(org).lower() for org in organization_ids}
    steps: list[Step] = list(spec.steps)
    applied: list[str] = []
    for override in spec.overrides:
        if not override.match.matches(product_group=product_group, product=product, organization_ids=organizations):
            continue
        try:
            steps = apply_override(steps, override)
        except LookupError as missing:
            reason = f"no step {missing} is left to place steps next to"
            raise _conflict(name, [*applied, override.name], reason) from None
        applied.append(override.name)
    problems = step_list_problems(name, steps, ())
    if problems:
        raise _conflict(name, applied, "; ".join(problem.message for problem in problems))
    used = {step.template for step in steps if isinstance(step, NotifyStep | ApprovalStep | ReminderStep)}
    # With each template its translations (`de/<name>`): the notify activity picks one per recipient.
    templates = {key: text for key, text in config.templates.items() if split_translated(key)[1] in used}
    return ResolvedProcess(
        process=name, steps=steps, version=config.version_hash(), overrides=applied, templates=templates
    )


def _conflict(process: ProcessName, overrides: list[str], reason: str) -> ConfigError:
    detail = f"the overrides {', '.join(map(repr, overrides))} of {process.value} do not combine: {reason}"
    return ConfigError(detail, issues=[FieldIssue(f"{process.value}.overrides", detail)])
