"""Checks that need more than one step's shape: process rules, templates, conditions, the catalog.

Each problem carries the path of the key it is about, so the loader can point at the very line; a problem
inside a condition also carries its position within the expression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import FileSystemLoader, TemplateError, TemplateNotFound, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from tessera.email.locales import split_translated
from tessera.processes.conditions import ConditionProblem, check_condition
from tessera.processes.schema import Override, ProcessName, WorkflowsConfig
from tessera.processes.steps import ApprovalStep, NotifyStep, OnTimeout, ReminderStep, Step, WebhookStep
from tessera.reports.schedule_config import schedule_problems
from tessera.webhooks.event_types import announces_core_step, event_type_problem

if TYPE_CHECKING:
    from tessera.catalog.schema import CatalogFile

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path_
    message: str
    inside: tuple[int, int] | None = None  # line, column within a condition's text


@dataclass(frozen=True)
class CatalogCodes:
    """The product groups and products overrides may name (code → group)."""

    product_groups: frozenset[str]
    products: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_catalog(cls, catalog: CatalogFile) -> CatalogCodes:
        groups = frozenset(group.code for group in catalog.product_groups)
        return cls(
            groups | {product.group for product in catalog.products}, {p.code: p.group for p in catalog.products}
        )


# What each process can do, and which roots its conditions see.
ALLOWED_KINDS: dict[ProcessName, tuple[str, ...]] = {
    ProcessName.license_order: ("approval", "create_license", "allocate", "visibility", "notify", "wait", "webhook"),
    ProcessName.subscription: ("renew", "notify", "wait", "webhook", "reminder"),
    ProcessName.cancellation: ("approval", "cancel", "notify", "wait", "webhook"),
    ProcessName.revocation: ("approval", "revoke", "notify", "wait", "webhook"),
    ProcessName.report: ("notify", "wait", "webhook"),
    ProcessName.recovery: ("approval", "recover", "notify", "wait", "webhook"),
}
CORE_STEP: dict[ProcessName, str | None] = {
    ProcessName.license_order: "create_license",
    ProcessName.subscription: "renew",
    ProcessName.cancellation: "cancel",
    ProcessName.revocation: "revoke",
    ProcessName.report: None,
    ProcessName.recovery: "recover",
}
ROOTS: dict[ProcessName, tuple[str, ...]] = {
    ProcessName.license_order: ("order", "product", "organization", "requester"),
    ProcessName.subscription: ("subscription", "order", "product", "organization"),
    ProcessName.cancellation: ("subscription", "order", "product", "organization", "requester"),
    ProcessName.revocation: ("order", "product", "organization", "requester"),
    ProcessName.report: (),
    ProcessName.recovery: ("order", "product", "organization", "requester"),
}
TEMPLATE_EXTRAS: dict[ProcessName, tuple[str, ...]] = {
    ProcessName.license_order: ("licenses",),
    ProcessName.subscription: ("renewal", "reminder"),
    ProcessName.cancellation: ("effective_end",),
    ProcessName.revocation: ("license",),
    ProcessName.report: ("report",),
    ProcessName.recovery: ("license",),
}
_AFTER_CORE = ("allocate", "visibility")


def step_list_problems(process: ProcessName, steps: Sequence[Step], where: Path_) -> list[Problem]:
    """Rules of a complete step list: allowed kinds, one core step, approvals first, unique names."""
    problems: list[Problem] = []
    allowed, core = ALLOWED_KINDS[process], CORE_STEP[process]
    seen: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.kind not in allowed:
            message = f"a {step.kind} step has no place in {process.value}; allowed here: {', '.join(allowed)}"
            problems.append(Problem((*where, index, "kind"), message))
        if step.label in seen:
            message = (
                f"two steps are called {step.label!r} (also step {seen[step.label] + 1}); give each a distinct name"
            )
            problems.append(Problem((*where, index, "name" if step.name else "kind"), message))
        seen.setdefault(step.label, index)
    if core is None:
        return problems
    positions = [index for index, step in enumerate(steps) if step.kind == core]
    if len(positions) != 1:
        count = "none" if not positions else f"{len(positions)}"
        problems.append(Problem(where, f"{process.value} needs exactly one {core} step; it has {count}"))
        return problems
    for index, step in enumerate(steps):
        if step.kind == "approval" and index > positions[0]:
            message = f"an approval after {core} would come too late; move it before step {positions[0] + 1}"
            problems.append(Problem((*where, index, "kind"), message))
        if step.kind in _AFTER_CORE and index < positions[0]:
            message = f"{step.kind} acts on the licenses, so it must come after {core}"
            problems.append(Problem((*where, index, "kind"), message))
        if isinstance(step, WebhookStep) and announces_core_step(step.event):
            problems += _announcement_problems(process, steps, index, step, positions[0], where)
    return problems


def _announcement_problems(
    process: ProcessName, steps: Sequence[Step], index: int, step: WebhookStep, core_at: int, where: Path_
) -> list[Problem]:
    core = CORE_STEP[process]
    if index < core_at:
        message = f"{step.event} announces what {core} did, so it must come after {core} (step {core_at + 1})"
        return [Problem((*where, index, "event"), message)]
    if process == ProcessName.license_order:
        # An order writes its queued events with its next status change, and a wait writes them before waiting:
        # order.fulfilled would go out while the order is not fulfilled, and a later step could still fail it.
        waits = [later for later in range(index + 1, len(steps)) if steps[later].kind == "wait"]
        if waits:
            message = (
                f"{step.event} would be sent before the wait in step {waits[-1] + 1}, while the order is not "
                "fulfilled yet (a later step may still fail it); move this step after the wait"
            )
            return [Problem((*where, index, "event"), message)]
    return []


def step_problems(process: ProcessName, step: Step, where: Path_, templates: SandboxedEnvironment) -> list[Problem]:
    problems: list[Problem] = []
    if step.when is not None:
        try:
            check_condition(step.when, ROOTS[process], process.value)
        except ConditionProblem as problem:
            problems.append(Problem((*where, "when"), problem.message, (problem.line, problem.column)))
    if isinstance(step, ApprovalStep):
        problems += _approval_problems(step, where)
    if isinstance(step, WebhookStep):
        message = event_type_problem(step.event, process.value)
        if message:
            problems.append(Problem((*where, "event"), message))
    if isinstance(step, NotifyStep | ApprovalStep | ReminderStep):
        extra = ("approval",) if isinstance(step, ApprovalStep) else ()
        message = _template_problem(templates, step.template, process, extra)
        if message:
            problems.append(Problem((*where, "template"), message))
        # Every translation is held to the same rules: a German recipient must not be the one who finds the typo.
        for translated in _translations(templates, step.template):
            message = _template_problem(templates, translated, process, extra)
            if message:
                problems.append(Problem((*where, "template"), message))
    return problems


def _translations(templates: SandboxedEnvironment, name: str) -> list[str]:
    loader = templates.loader
    if loader is None:
        return []
    return sorted(key for key in loader.list_templates() if split_translated(key) == (key.split("/")[0], name))


def _approval_problems(step: ApprovalStep, where: Path_) -> list[Problem]:
    if step.on_timeout == OnTimeout.escalate and step.escalate_to is None:
        message = "on_timeout: escalate needs escalate_to: group_admins, reseller_admins, vendor_admins or e-mails"
        return [Problem((*where, "on_timeout"), message)]
    if step.on_timeout != OnTimeout.escalate and step.escalate_to is not None:
        return [Problem((*where, "escalate_to"), "escalate_to is only used with on_timeout: escalate")]
    if step.escalate_to is not None and step.escalate_to == step.approvers:
        return [Problem((*where, "escalate_to"), "escalate_to names the same approvers; escalate to someone else")]
    return []


def template_variables(process: ProcessName, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What a template of this process may use: the condition roots and a few extras (`approval` for approvers)."""
    return (*ROOTS[process], *TEMPLATE_EXTRAS[process], *extra, "portal_url")


def _template_problem(
    templates: SandboxedEnvironment, name: str, process: ProcessName, extra: tuple[str, ...]
) -> str | None:
    allowed = template_variables(process, extra)
    try:
        source, _filename, _uptodate = templates.loader.get_source(templates, name)  # type: ignore[union-attr]
        unknown = sorted(meta.find_undeclared_variables(templates.parse(source)) - set(allowed))
    except TemplateNotFound:
        loader = templates.loader
        known = ", ".join(sorted(loader.list_templates())) if loader is not None else ""
        folder = ", ".join(getattr(loader, "searchpath", [])) or "the templates directory"
        return f"template {name!r} not found in {folder}; available: {known or 'none'}"
    except TemplateSyntaxError as exc:
        return f"template {name!r} line {exc.lineno}: {exc.message}"
    except TemplateError as exc:
        return f"template {name!r}: {exc}"
    if unknown:
        available = ", ".join(allowed)
        return f"template {name!r} uses {', '.join(unknown)}, unknown in {process.value}; available: {available}"
    return None


def override_problems(
    process: ProcessName, override: Override, base: Sequence[Step], where: Path_, catalog: CatalogCodes | None
) -> list[Problem]:
    problems = _match_problems(override, where, catalog)
    adding = bool(override.add_steps or override.remove_steps)
    if override.replace_steps is None and not adding:
        problems.append(Problem(where, "an override must change something: replace_steps, add_steps or remove_steps"))
    if override.replace_steps is not None and adding:
        problems.append(Problem((*where, "replace_steps"), "replace_steps replaces everything; drop add/remove_steps"))
    if override.before and override.after:
        problems.append(Problem((*where, "after"), "give either before or after, not both"))
    for key in ("before", "after"):
        if getattr(override, key) and not override.add_steps:
            problems.append(Problem((*where, key), f"{key} places add_steps, which this override does not have"))
    names = [step.label for step in base]
    references: list[tuple[str | int, str | None]] = [("before", override.before), ("after", override.after)]
    references += list(enumerate(override.remove_steps))
    for place, name in references:
        if name is not None and name not in names:
            path = (*where, "remove_steps", place) if isinstance(place, int) else (*where, place)
            problems.append(Problem(path, f"no step called {name!r} in {process.value}; its steps: {', '.join(names)}"))
    return problems


def _match_problems(override: Override, where: Path_, catalog: CatalogCodes | None) -> list[Problem]:
    match, at = override.match, (*where, "match")
    if match.is_empty():
        return [Problem(at, "an override matches nothing unless it names product_groups, products or organizations")]
    if catalog is None:
        return []
    problems = []
    for index, group in enumerate(match.product_groups):
        if group not in catalog.product_groups:
            known = ", ".join(sorted(catalog.product_groups)) or "none"
            message = f"product group {group!r} is not in the catalog, so this override matches nothing; known: {known}"
            problems.append(Problem((*at, "product_groups", index), message))
    for index, product in enumerate(match.products):
        if product not in catalog.products:
            known = ", ".join(sorted(catalog.products)) or "none"
            message = f"product {product!r} is not in the catalog, so this override matches nothing; known: {known}"
            problems.append(Problem((*at, "products", index), message))
    groups_of_products = {catalog.products[code] for code in match.products if code in catalog.products}
    if match.product_groups and groups_of_products and not groups_of_products & set(match.product_groups):
        message = "none of these products is in the listed product_groups, so this override matches nothing"
        problems.append(Problem((*at, "products"), message))
    return problems


def apply_override(steps: Sequence[Step], override: Override) -> list[Step]:
    """The step list after one override; a missing before/after anchor raises LookupError."""
    if override.replace_steps is not None:
        return list(override.replace_steps)
    result = [step for step in steps if step.label not in override.remove_steps]
    anchor = override.before or override.after
    if anchor is None:
        return result + list(override.add_steps)
    labels = [step.label for step in result]
    if anchor not in labels:
        raise LookupError(anchor)
    position = labels.index(anchor) + (1 if override.after else 0)
    return result[:position] + list(override.add_steps) + result[position:]


def config_problems(config: WorkflowsConfig, templates_dir: Path, catalog: CatalogCodes | None) -> list[Problem]:
    """Every problem of a shape-valid file."""
    # Sandboxed like the renderer, so a template that compiles here compiles there.
    templates = SandboxedEnvironment(loader=FileSystemLoader(str(templates_dir)), autoescape=False)
    problems: list[Problem] = [
        Problem(path, message)
        for path, message in schedule_problems(config.report.schedules, templates_dir.parent / "reports")
    ]
    for process in ProcessName:
        spec = config.process(process)
        problems += step_list_problems(process, spec.steps, (process.value, "steps"))
        for index, step in enumerate(spec.steps):
            problems += step_problems(process, step, (process.value, "steps", index), templates)
        seen: set[str] = set()
        for number, override in enumerate(spec.overrides):
            where: Path_ = (process.value, "overrides", number)
            if override.name in seen:
                problems.append(Problem((*where, "name"), f"two overrides are called {override.name!r}"))
            seen.add(override.name)
            problems += override_problems(process, override, spec.steps, where, catalog)
            for key in ("replace_steps", "add_steps"):
                for index, step in enumerate(getattr(override, key) or []):
                    problems += step_problems(process, step, (*where, key, index), templates)
            if not any(problem.path[: len(where)] == where for problem in problems):
                # Checked alone against the base list; combinations are checked when an order resolves them.
                key = "add_steps" if override.add_steps else "remove_steps"
                key = "replace_steps" if override.replace_steps is not None else key
                merged = step_list_problems(process, apply_override(spec.steps, override), ())
                problems += [Problem((*where, key), f"with this override, {p.message}") for p in merged]
    return problems
