"""Broken workflow files: each mistake is reported once, with its message, line and (where it matters) column.

Each case writes only the part that matters; `_complete` appends the processes it leaves out *after* it, so the
line numbers in the table are the lines of the case's own text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tessera.errors import ConfigError
from tessera.processes import CatalogCodes, load_workflows, parse_workflows

REST = {
    "license_order": "license_order:\n  steps:\n    - kind: create_license\n",
    "subscription": "subscription:\n  steps:\n    - kind: renew\n",
    "cancellation": "cancellation:\n  steps:\n    - kind: cancel\n",
    "revocation": "revocation:\n  steps:\n    - kind: revoke\n",
    "report": "report:\n  steps:\n    - kind: webhook\n      event: report.ready\n",
}
WAIT = "      add_steps: [{kind: wait, duration: P1D}]\n"
CATALOG = CatalogCodes(frozenset({"CAD", "SIM"}), {"PRO-CAD": "CAD", "SIM-CLOUD-Y": "SIM"})


def _complete(text: str) -> str:
    return text + "".join(part for name, part in REST.items() if not re.search(rf"^{name}:", text, re.M))


def _approval(option: str, *, extra: str = "") -> str:
    """A license order whose approval (lines 3-5) has `option` on line 6."""
    return (
        "license_order:\n  steps:\n    - kind: approval\n      approvers: group_admins\n      timeout: P3D\n"
        f"      {option}\n{extra}    - kind: create_license\n"
    )


def _when(expression: str) -> str:
    """A license order whose create_license step has `when: <expression>` on line 4, the value at column 13."""
    return f"license_order:\n  steps:\n    - kind: create_license\n      when: {expression}\n"


def _notify(template: str) -> str:
    """The notify step's template on line 5."""
    return f"license_order:\n  steps:\n    - kind: create_license\n    - kind: notify\n      template: {template}\n"


def _override(body: str) -> str:
    """A license order with one override, whose keys start on line 6."""
    return f"license_order:\n  steps:\n    - kind: create_license\n  overrides:\n    - name: special\n{body}"


CASES: list[tuple[str, str, int, int | None, str]] = [
    # id, file text, line, column (None: not asserted), message part
    (
        "unknown step kind",
        "license_order:\n  steps:\n    - kind: aproval\n    - kind: create_license\n",
        3,
        7,
        "unknown step kind 'aproval'; choose one of: approval, create_license, allocate, visibility, notify",
    ),
    ("step without kind", "license_order:\n  steps:\n    - name: x\n", 3, None, "every step needs a kind: one of"),
    (
        "unknown option",
        _approval("timeot: P2D"),
        6,
        7,
        "unknown key 'timeot'; allowed here: name, when, kind, approvers, timeout, on_timeout, escalate_to, template",
    ),
    ("required option missing", "license_order:\n  steps:\n    - kind: wait\n", 3, None, "'duration' is missing"),
    (
        "bad duration",
        _approval("escalate_to: vendor_admins").replace("P3D", "3 days"),
        5,
        7,
        "'3 days' is not an ISO 8601 duration (examples: P1Y, P1M, P30D, PT48H)",
    ),
    ("negative timeout", _approval("on_timeout: reject").replace("P3D", "-P1D"), 5, 7, "is not an ISO 8601 duration"),
    ("zero timeout", _approval("on_timeout: reject").replace("P3D", "P0D"), 5, 7, "'P0D' is zero"),
    ("calendar timeout", _approval("on_timeout: reject").replace("P3D", "P1M"), 5, 7, "'P1M' has no fixed length"),
    (
        "unknown approver set",
        _approval("on_timeout: reject").replace("group_admins", "admins"),
        4,
        7,
        "unknown approver set 'admins'; choose group_admins, reseller_admins, vendor_admins, or a list of e-mail",
    ),
    ("approver not an e-mail", _approval("escalate_to: [boss, b@x.example]"), 6, 7, "'boss' is not an e-mail address"),
    (
        "unknown on_timeout",
        _approval("on_timeout: later"),
        6,
        7,
        "'later' is not allowed here; choose approve, reject or escalate",
    ),
    ("escalate without target", _approval("on_timeout: escalate"), 6, 7, "on_timeout: escalate needs escalate_to"),
    (
        "escalate_to without escalate",
        _approval("escalate_to: vendor_admins"),
        6,
        7,
        "escalate_to is only used with on_timeout: escalate",
    ),
    ("self-approval not a yes/no", _approval('allow_self_approval: "yes"'), 6, 7, "Input should be a valid boolean"),
    (
        "escalate to the same approvers",
        _approval("on_timeout: escalate", extra="      escalate_to: group_admins\n"),
        7,
        7,
        "escalate_to names the same approvers",
    ),
    (
        "expression syntax error",
        _when("order.quantity >> 10"),
        4,
        29,
        "syntax error in the condition: unexpected input at column 17 of `order.quantity >> 10`",
    ),
    (
        "expression syntax error in quotes",
        _when('"order.quantity > (1"'),
        4,
        32,
        "syntax error in the condition: unexpected input at column 19",
    ),
    (
        "expression over an unknown name",
        _when("ordr.quantity > 10"),
        4,
        13,
        "unknown name 'ordr'; conditions in license_order can use: order, product, organization, requester",
    ),
    (
        "expression over an unknown field",
        _when("order.quantity > 1 && product.grp == 'SIM'"),
        4,
        43,
        "product has no field 'grp'; its fields: code, group, kind, container_kinds, max_activations",
    ),
    (
        "expression over a root the process lacks",
        _when("subscription.term_no > 1"),
        4,
        13,
        "'subscription' is not available in license_order conditions",
    ),
    (
        "expression over several lines",
        _when("order.quantity > 1 &&\n        order.qty > 1"),
        4,
        13,
        "order has no field 'qty'",
    ),
    ("non-boolean expression", _when("order.quantity * 2"), 4, 13, "the condition gives an int, not true or false"),
    ("number compared with text", _when('order.quantity == "10"'), 4, None, "cannot compare int with string"),
    ("unknown function", _when("product.code.lower() == 'x'"), 4, 26, "unknown function 'lower'"),
    ("empty condition", _when("''"), 4, 7, "the condition is empty"),
    (
        "unknown template",
        _notify("order_done.txt.j2"),
        5,
        7,
        "; available: approval_requested.txt.j2, broken.txt.j2, customer.txt.j2, done.txt.j2",
    ),
    ("template with a syntax error", _notify("broken.txt.j2"), 5, 7, "'broken.txt.j2' line 2: Unexpected end of"),
    (
        "template over an unknown variable",
        _notify("customer.txt.j2"),
        5,
        7,
        "template 'customer.txt.j2' uses customer, unknown in license_order; available: order, product, organization",
    ),
    (
        "unknown recipient",
        _notify("done.txt.j2") + "      to: [requester, everyone]\n",
        6,
        7,
        "unknown recipient 'everyone'; choose requester, group_admins, reseller_admins, vendor_admins",
    ),
    (
        "override naming a product group absent from the catalog",
        _override("      match: {product_groups: [CAD, SIMS]}\n      remove_steps: []\n" + WAIT),
        6,
        None,
        "product group 'SIMS' is not in the catalog, so this override matches nothing; known: CAD, SIM",
    ),
    (
        "override naming a product absent from the catalog",
        _override("      match:\n        products: [PRO-CAM]\n" + WAIT),
        7,
        None,
        "product 'PRO-CAM' is not in the catalog",
    ),
    (
        "override whose product is outside its group",
        _override("      match:\n        product_groups: [SIM]\n        products: [PRO-CAD]\n" + WAIT),
        8,
        9,
        "none of these products is in the listed product_groups, so this override matches nothing",
    ),
    (
        "override matching everything",
        _override("      match: {}\n" + WAIT),
        6,
        7,
        "an override matches nothing unless it names product_groups, products or organizations",
    ),
    (
        "override placing steps next to an unknown step",
        _override("      match: {products: [PRO-CAD]}\n" + WAIT + "      after: notify\n"),
        8,
        7,
        "no step called 'notify' in license_order; its steps: create_license",
    ),
    (
        "override changing nothing",
        _override("      match: {products: [PRO-CAD]}\n"),
        5,
        None,
        "an override must change something: replace_steps, add_steps or remove_steps",
    ),
    (
        "override with an unknown key",
        _override("      match: {products: [PRO-CAD]}\n      add_step: []\n"),
        7,
        7,
        "unknown key 'add_step'; allowed here: name, match, replace_steps, remove_steps, add_steps, before, after",
    ),
    (
        "override organization that is not an id",
        _override("      match: {organizations: [ACME]}\n      remove_steps: [create_license]\n"),
        6,
        None,
        "String should match pattern",
    ),
    (
        "override leaving the process without its core step",
        _override("      match: {products: [PRO-CAD]}\n      remove_steps: [create_license]\n"),
        7,
        7,
        "with this override, license_order needs exactly one create_license step; it has none",
    ),
    (
        "unknown process",
        "licence_order:\n  steps: []\n",
        1,
        1,
        "unknown process 'licence_order'; the processes are: license_order, subscription, cancellation",
    ),
    (
        "duplicate step names",
        _notify("done.txt.j2") + "      name: tell\n    - {kind: notify, name: tell, template: done.txt.j2}\n",
        7,
        22,
        "two steps are called 'tell' (also step 2); give each a distinct name",
    ),
    ("empty step list", "license_order:\n  steps: []\n", 2, 3, "a process needs at least one step"),
    ("wrong type", "license_order:\n  steps:\n    kind: create_license\n", 2, 3, "Input should be a valid list"),
    ("YAML syntax error", "license_order:\n  steps:\n    - kind: [create_license\n", 4, None, "while parsing"),
    ("duplicate key", _approval("timeout: P4D"), 6, 7, 'found duplicate key "timeout"'),
    (
        "step kind foreign to the process",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: renew\n",
        4,
        7,
        "a renew step has no place in license_order; allowed here: approval, create_license, allocate",
    ),
    (
        "process without its core step",
        "license_order:\n  steps:\n    - kind: webhook\n      event: order.fulfilled\n",
        2,
        3,
        "license_order needs exactly one create_license step; it has none",
    ),
    (
        "approval after creation",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: approval\n"
        "      approvers: vendor_admins\n      timeout: P1D\n",
        4,
        7,
        "an approval after create_license would come too late; move it before step 1",
    ),
    (
        "order.fulfilled announced before the licenses exist",
        "license_order:\n  steps:\n    - kind: webhook\n      event: order.fulfilled\n    - kind: create_license\n",
        4,
        7,
        "order.fulfilled announces what create_license did, so it must come after create_license (step 2)",
    ),
    (
        "order.fulfilled sent before a wait",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: webhook\n      event: order.fulfilled\n"
        "    - kind: wait\n      duration: P1D\n",
        5,
        7,
        "order.fulfilled would be sent before the wait in step 3, while the order is not fulfilled yet",
    ),
    (
        "renewal announced before the renewal",
        "subscription:\n  steps:\n    - kind: webhook\n      event: subscription.renewed\n    - kind: renew\n",
        4,
        7,
        "subscription.renewed announces what renew did, so it must come after renew (step 2)",
    ),
    (
        "allocation before creation",
        "license_order:\n  steps:\n    - kind: allocate\n      to: requester\n    - kind: create_license\n",
        3,
        7,
        "allocate acts on the licenses, so it must come after create_license",
    ),
    (
        "unknown allocation",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: allocate\n      to: everyone\n",
        5,
        7,
        "'everyone' is not allowed here; choose requester, organization, user or as_ordered",
    ),
    (
        "bad event name",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: webhook\n      event: Order Done\n",
        5,
        7,
        "'Order Done' is not an event name",
    ),
    (
        "event type unknown to the registry",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: webhook\n      event: order.done\n",
        5,
        7,
        "unknown event type 'order.done'; known: license.revoked, order.failed, order.fulfilled",
    ),
    (
        "event type of another process",
        "license_order:\n  steps:\n    - kind: create_license\n    - kind: webhook\n      event: report.ready\n",
        5,
        7,
        "license_order does not publish report.ready; its event types: order.fulfilled",
    ),
]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "approval_requested.txt.j2").write_text("{{ approval.deadline }}\n")
    (folder / "done.txt.j2").write_text("{{ order.quantity }} x {{ product.code }}\n")
    (folder / "broken.txt.j2").write_text("Hello\n{% if order.quantity %}\n")
    (folder / "customer.txt.j2").write_text("Dear {{ customer.name }}\n")
    return folder


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "line", "column", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_broken_file(templates: Path, text: str, line: int, column: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_workflows(_complete(text), "workflows.yaml", templates, CATALOG)
    issues = caught.value.issues
    assert len(issues) == 1, str(caught.value)
    issue = issues[0]
    assert message in issue.message, str(caught.value)
    assert (issue.file, issue.line) == ("workflows.yaml", line), str(caught.value)
    if column is not None:
        assert issue.column == column, str(caught.value)


def test_every_error_is_reported_at_once(templates: Path) -> None:
    text = _complete(_when("ordr > 1") + "    - kind: notify\n      template: nope.txt.j2\n")
    with pytest.raises(ConfigError) as caught:
        parse_workflows(text, "workflows.yaml", templates, CATALOG)
    assert [(issue.line, issue.field) for issue in caught.value.issues] == [
        (4, "license_order.steps.0.when"),
        (6, "license_order.steps.1.template"),
    ]
    assert "workflows.yaml:4:13: license_order.steps.0.when: unknown name 'ordr'" in str(caught.value)


def test_missing_process_is_named(templates: Path) -> None:
    text = "".join(part for name, part in REST.items() if name != "report")
    with pytest.raises(ConfigError, match="the process 'report' is missing"):
        parse_workflows(text, "workflows.yaml", templates, CATALOG)


def test_catalog_is_optional(templates: Path) -> None:
    text = _complete(_override("      match: {product_groups: [SIMS]}\n      remove_steps: []\n      add_steps: []\n"))
    with pytest.raises(ConfigError, match="an override must change something"):
        parse_workflows(text, "workflows.yaml", templates)
    text = _complete(_override("      match: {product_groups: [SIMS]}\n" + WAIT))
    assert parse_workflows(text, "workflows.yaml", templates).license_order.overrides[0].match.product_groups == [
        "SIMS"
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_workflows(tmp_path / "workflows.yaml", tmp_path)
    assert caught.value.issues[0].file == str(tmp_path / "workflows.yaml")
