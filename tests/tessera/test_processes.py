"""The workflow language: the shipped file, resolving steps with overrides, the version hash, conditions, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tessera.catalog.loader import read_catalog
from tessera.errors import ConfigError
from tessera.processes import (
    ApprovalStep,
    CatalogCodes,
    ConditionContext,
    ConditionError,
    OrderFacts,
    OrganizationFacts,
    ProductFacts,
    ResolvedProcess,
    WorkflowsConfig,
    evaluate,
    load_workflows,
    parse_workflows,
    resolve_steps,
)
from tessera.processes.conditions import ConditionProblem, check_condition
from tessera.settings import REPO_ROOT

CONFIG = REPO_ROOT / "config"
TEMPLATES = CONFIG / "templates"
RESELLER = "11111111-2222-3333-4444-555555555555"
CUSTOMER = "99999999-8888-7777-6666-555555555555"


@pytest.fixture(scope="module")
def shipped() -> WorkflowsConfig:
    catalog = CatalogCodes.from_catalog(read_catalog(CONFIG / "catalog.yaml"))
    return load_workflows(CONFIG / "workflows.yaml", TEMPLATES, catalog)


def test_shipped_file_says_what_the_analyst_asked_for(shipped: WorkflowsConfig) -> None:
    kinds = [step.kind for step in shipped.license_order.steps]
    assert kinds == ["approval", "create_license", "allocate", "visibility", "notify", "webhook"]
    approval = shipped.license_order.steps[0]
    assert isinstance(approval, ApprovalStep)
    assert (approval.approvers, approval.when, approval.timeout) == ("group_admins", "order.quantity > 10", "P3D")
    assert (approval.on_timeout, approval.escalate_to) == ("escalate", "reseller_admins")
    assert [override.name for override in shipped.license_order.overrides] == ["simulation needs vendor approval"]


def test_resolve_without_matching_override_keeps_the_steps(shipped: WorkflowsConfig) -> None:
    resolved = resolve_steps(
        shipped, "license_order", product_group="CAD", product="PRO-CAD", organization_ids=[CUSTOMER]
    )
    assert resolved.steps == shipped.license_order.steps
    assert resolved.overrides == []
    assert resolved.version == shipped.version_hash()


def test_resolve_with_override_adds_vendor_approval_before_creation(shipped: WorkflowsConfig) -> None:
    resolved = resolve_steps(shipped, "license_order", product_group="SIM", product="SIM-CLOUD-Y")
    labels = [step.label for step in resolved.steps]
    assert labels[:3] == ["group admin approval", "vendor approval", "create_license"]
    assert resolved.overrides == ["simulation needs vendor approval"]
    assert resolved.describe()[1] == "2. vendor approval: approval by vendor admins; after P5D: rejected"


def test_resolved_process_travels_as_json(shipped: WorkflowsConfig) -> None:
    resolved = resolve_steps(shipped, "license_order", product_group="SIM", product="SIM-CLOUD-Y")
    again = ResolvedProcess.model_validate_json(resolved.model_dump_json())
    assert again == resolved
    assert isinstance(again.steps[1], ApprovalStep)


OVERRIDES = """\
license_order:
  steps:
    - kind: create_license
    - kind: notify
      template: done.txt.j2
  overrides:
    - name: reseller wants approval
      match: {organizations: [RESELLER_ID]}
      add_steps:
        - {kind: approval, approvers: reseller_admins, timeout: PT12H}
      before: create_license
    - name: trial is silent
      match: {product_groups: [CAD], products: [PRO-CAD-TRIAL]}
      remove_steps: [notify]
    - name: big customer does it by hand
      match: {organizations: [CUSTOMER_ID]}
      replace_steps:
        - {kind: approval, approvers: [boss@customer.example], timeout: P1D}
        - kind: create_license
    - name: notify again
      match: {products: [PRO-CAD-TRIAL]}
      add_steps:
        - {kind: wait, duration: PT1H}
      after: notify
subscription: {steps: [{kind: renew}]}
cancellation: {steps: [{kind: cancel}]}
revocation: {steps: [{kind: revoke}]}
report: {steps: [{kind: webhook, event: report.ready}]}
""".replace("RESELLER_ID", RESELLER).replace("CUSTOMER_ID", CUSTOMER)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "done.txt.j2").write_text("{{ order.quantity }} x {{ product.code }}\n")
    (tmp_path / "approval_requested.txt.j2").write_text("{{ approval.deadline }}\n")
    return tmp_path


def _labels(config: WorkflowsConfig, **order: object) -> list[str]:
    resolved = resolve_steps(config, "license_order", **order)  # type: ignore[arg-type]
    return [step.label for step in resolved.steps]


def test_override_by_organization_matches_its_subtree(templates: Path) -> None:
    config = parse_workflows(OVERRIDES, "w.yaml", templates)
    assert _labels(config, product="PRO-CAD", organization_ids=[CUSTOMER.upper()]) == ["approval", "create_license"]
    below_reseller = _labels(config, product="PRO-CAD", organization_ids=["x", RESELLER])
    assert below_reseller == ["approval", "create_license", "notify"]
    assert _labels(config, product="PRO-CAD", organization_ids=["x"]) == ["create_license", "notify"]


def test_overrides_apply_in_file_order_and_refuse_contradictions(templates: Path) -> None:
    config = parse_workflows(OVERRIDES, "w.yaml", templates)
    # "trial is silent" needs both its product group and its product.
    assert _labels(config, product_group="SIM", product="PRO-CAD-TRIAL", organization_ids=[]) == [
        "create_license",
        "notify",
        "wait",
    ]
    # Removing notify, then adding after notify, cannot both hold for one order.
    with pytest.raises(ConfigError, match="'trial is silent', 'notify again' of license_order do not combine"):
        resolve_steps(config, "license_order", product_group="CAD", product="PRO-CAD-TRIAL")


def test_version_hash_is_stable_and_follows_meaning(templates: Path) -> None:
    first = parse_workflows(OVERRIDES, "w.yaml", templates).version_hash()
    assert parse_workflows(OVERRIDES, "other.yaml", templates).version_hash() == first
    commented = "# a comment changes nothing\n" + OVERRIDES.replace("PT12H}", "PT12H}   # half a day")
    assert parse_workflows(commented, "w.yaml", templates).version_hash() == first
    changed = parse_workflows(OVERRIDES.replace("PT12H", "PT13H"), "w.yaml", templates).version_hash()
    assert changed != first
    assert len(first) == 64


def test_shipped_hash_changes_when_the_file_changes(tmp_path: Path, shipped: WorkflowsConfig) -> None:
    edited = tmp_path / "workflows.yaml"
    edited.write_text((CONFIG / "workflows.yaml").read_text().replace("timeout: P3D", "timeout: P4D"))
    assert load_workflows(edited, TEMPLATES).version_hash() != shipped.version_hash()
    assert load_workflows(CONFIG / "workflows.yaml", TEMPLATES).version_hash() == shipped.version_hash()


CONTEXT = ConditionContext(
    order=OrderFacts(id="o1", quantity=12, fields={"trial_days": 30, "rush": True}, modules=["CAM"]),
    product=ProductFacts(code="PRO-CAD", group="CAD", kind="perpetual"),
    organization=OrganizationFacts(id=CUSTOMER, kind="customer", ancestor_ids=[RESELLER]),
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("order.quantity > 10", True),
        ("order.quantity > 12", False),
        ('order.quantity > 100 || product.group == "CAD"', True),
        ('product.code.startsWith("SIM")', False),
        ('order.modules.exists(m, m == "CAM")', True),
        ("order.fields.trial_days >= 30 && order.fields.rush", True),
        ("has(order.fields.missing) && order.fields.missing > 1", False),
        (f'"{RESELLER}" in organization.ancestor_ids', True),
    ],
)
def test_evaluate(expression: str, expected: bool) -> None:
    check_condition(expression, ("order", "product", "organization", "requester"))
    assert evaluate(expression, CONTEXT) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("order.fields.missing > 1", "no such member in mapping: 'missing' (guard optional values with has()"),
        ('requester.email == "a@b.example"', "uses requester, which this context does not provide"),
        ("order.fields.trial_days", "gives IntType(30), not true or false"),
    ],
)
def test_evaluate_refuses_missing_values(expression: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        evaluate(expression, CONTEXT)
    assert message in caught.value.detail


def test_conditions_are_never_python() -> None:
    with pytest.raises(ConditionProblem, match="unknown function '__import__'"):
        check_condition('__import__("os").system("true")', ("order",))
    with pytest.raises(ConditionError):
        evaluate('__import__("os")', CONTEXT)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # Templates and catalog named explicitly, so a TESSERA_CONFIG_DIR in the environment cannot change the test.
    places = ["--templates", str(TEMPLATES), "--catalog", str(CONFIG / "catalog.yaml")]
    command = [sys.executable, "-m", "tessera.cli", "workflows", "check", *args, *places]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_cli_check_ok() -> None:
    result = _cli(str(CONFIG / "workflows.yaml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok: ")
    assert "  3. allocate the tickets as the order asks (requester, organization or user)" in lines
    assert "override 'simulation needs vendor approval'" in result.stdout


def test_cli_check_reports_every_error_with_place(tmp_path: Path) -> None:
    broken = tmp_path / "workflows.yaml"
    text = (CONFIG / "workflows.yaml").read_text()
    text = text.replace("approvers: group_admins", "approvers: group_admin").replace("[SIM]", "[SIMS]")
    broken.write_text(text)
    result = _cli(str(broken))
    assert result.returncode == 2
    line = text.splitlines().index("      approvers: group_admin") + 1
    assert f"{broken}:{line}:7: license_order.steps.0.approvers: unknown approver set 'group_admin'" in result.stderr
    fixed = broken.read_text().replace("group_admin\n", "group_admins\n")
    broken.write_text(fixed)
    result = _cli(str(broken))
    sims = fixed.splitlines().index("        product_groups: [SIMS]") + 1
    assert f":{sims}:" in result.stderr
    assert "product group 'SIMS' is not in the catalog, so this override matches nothing; known: CAD, SIM" in (
        result.stderr
    )
    assert _cli(str(broken), "--no-catalog").returncode == 0
