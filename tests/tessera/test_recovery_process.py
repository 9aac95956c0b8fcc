"""The `recovery` process in workflows.yaml: its one `recover` step, what may surround it, and its default."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli import app
from tessera.errors import ConfigError
from tessera.processes import ProcessName, RecoverStep, WaitStep, parse_workflows, resolve_steps
from tessera.settings import REPO_ROOT

BASE = """license_order:
  steps:
    - kind: create_license
subscription:
  steps:
    - kind: renew
cancellation:
  steps:
    - kind: cancel
revocation:
  steps:
    - kind: revoke
report:
  steps:
    - kind: webhook
      event: report.ready
"""


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "approval_requested.txt.j2").write_text("{{ approval.deadline }}\n")
    (folder / "recovered.txt.j2").write_text("{{ license.id }} of {{ product.code }}\n")
    (folder / "subscription.txt.j2").write_text("{{ subscription.id }}\n")
    return folder


def _problem(text: str, templates: Path) -> tuple[int | None, str]:
    with pytest.raises(ConfigError) as caught:
        parse_workflows(text, "workflows.yaml", templates)
    issues = caught.value.issues
    assert len(issues) == 1, str(caught.value)
    return issues[0].line, issues[0].message


def test_a_file_without_recovery_gets_the_lock_period(templates: Path) -> None:
    config = parse_workflows(BASE, "workflows.yaml", templates)
    resolved = resolve_steps(config, ProcessName.recovery)
    assert [type(step) for step in resolved.steps] == [WaitStep, RecoverStep]
    assert isinstance(resolved.steps[0], WaitStep)
    assert resolved.steps[0].duration == "P7D"


def test_a_recovery_with_an_approval_and_a_notification(templates: Path) -> None:
    text = BASE + (
        "recovery:\n  steps:\n"
        "    - {kind: approval, approvers: vendor_admins, timeout: P3D, allow_self_approval: false}\n"
        "    - kind: recover\n"
        "    - {kind: notify, template: recovered.txt.j2, to: [requester, group_admins]}\n"
    )
    config = parse_workflows(text, "workflows.yaml", templates)
    assert [step.kind for step in resolve_steps(config, "recovery").steps] == ["approval", "recover", "notify"]
    assert "recovery:" in config.describe()


@pytest.mark.parametrize(
    ("tail", "line", "message"),
    [
        ("recovery:\n  steps:\n    - {kind: wait, duration: P1D}\n", 18, "recovery needs exactly one recover step"),
        (
            "recovery:\n  steps:\n    - kind: recover\n    - kind: recover\n      name: twice\n",
            18,
            "recovery needs exactly one recover step; it has 2",
        ),
        (
            "recovery:\n  steps:\n    - kind: recover\n    - {kind: approval, approvers: group_admins, timeout: P1D}\n",
            20,
            "an approval after recover would come too late",
        ),
        ("recovery:\n  steps:\n    - kind: recover\n    - kind: revoke\n", 20, "a revoke step has no place"),
        (
            "recovery:\n  steps:\n    - kind: recover\n    - {kind: wait, duration: P1M}\n",
            20,
            "has no fixed length",
        ),
        (
            "recovery:\n  steps:\n    - kind: recover\n    - {kind: notify, template: subscription.txt.j2}\n",
            20,
            "uses subscription, unknown in recovery",
        ),
        (
            "recovery:\n  steps:\n    - kind: recover\n      when: subscription.term_no > 1\n",
            20,
            "subscription",
        ),
    ],
)
def test_broken_recovery_is_reported_with_its_line(templates: Path, tail: str, line: int, message: str) -> None:
    found_line, found = _problem(BASE + tail, templates)
    assert message in found
    assert found_line == line, found


def test_recover_has_no_place_in_other_processes(templates: Path) -> None:
    text = BASE.replace("    - kind: revoke\n", "    - kind: revoke\n    - kind: recover\n")
    line, message = _problem(text, templates)
    assert (line, message.split(";")[0]) == (13, "a recover step has no place in revocation")


def test_the_shipped_file_checks_and_describes_recovery() -> None:
    result = CliRunner().invoke(app, ["workflows", "check", str(REPO_ROOT / "config" / "workflows.yaml")])
    assert result.exit_code == 0, result.output
    assert "recovery:\n  1. lock period: wait P7D\n  2. free the lost activation's slot" in result.output
