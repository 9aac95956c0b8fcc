"""YAML documents whose every error names its file, line, column and dotted field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from tessera.errors import ConfigError, FieldIssue
from tessera.fields import FieldSpec
from tessera.schema_base import StrictModel
from tessera.yamlsource import dotted, load_yaml, parse_yaml

DOCUMENT = """\
# a comment
name: demo
items:
  - code: A
    tags: [x, y, z]
    price: {amount: "1.00", currency: EUR}
  - code: B
    nested:
      deep: 1
"""


def issues_of(text: str, model: type[BaseModel]) -> list[FieldIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "doc.yaml").validate(model)
    return caught.value.issues


@pytest.mark.parametrize(
    ("path", "place"),
    [
        ((), (1, 1)),
        (("name",), (2, 1)),
        (("items",), (3, 1)),
        (("items", 0), (4, 5)),
        (("items", 0, "code"), (4, 5)),
        (("items", 0, "tags", 2), (5, 18)),
        (("items", 0, "price", "currency"), (6, 29)),
        (("items", 1, "nested", "deep"), (9, 7)),
        # Down to the deepest part that exists: a missing key is shown at the key of its mapping,
        (("items", 1, "nested", "missing"), (8, 5)),
        (("items", 7, "code"), (3, 1)),
        # and a missing top-level key at the document's first key.
        (("nowhere", "at", "all"), (2, 1)),
        (("name", "below", "a", "scalar"), (2, 1)),
    ],
)
def test_locate(path: tuple[str | int, ...], place: tuple[int, int]) -> None:
    assert parse_yaml(DOCUMENT, "doc.yaml").locate(path) == place


def test_issue_names_file_line_column_and_field() -> None:
    issue = parse_yaml(DOCUMENT, "doc.yaml").issue(("items", 1, "nested", "deep"), "too deep")
    assert issue == FieldIssue("items.1.nested.deep", "too deep", line=9, column=7, file="doc.yaml")
    assert issue.where() == "doc.yaml:9:7"
    assert dotted(()) == "(document)"


def test_scalars_become_plain_python_values() -> None:
    data = parse_yaml("a: 1.5\nb: 0x10\nc: &on true\nd: *on\ne: 2024-02-29\nf: null\ng: 1_000\n", "x").data
    assert data == {
        "a": 1.5,
        "b": 16,
        "c": True,
        "d": True,
        "e": date(2024, 2, 29),
        "f": None,
        "g": 1000,
    }
    assert [type(value) for value in data.values()] == [float, int, bool, bool, date, type(None), int]


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("a: [1, 2\nb: 3\n", 2, 2, "flow sequence"),
        ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed"),
        ("a:\n\tb: 1\n", 2, 1, "'\\t' that cannot start any token"),
        ('a: "open\n', 2, 1, "quoted scalar"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "bad.yaml")
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column, issue.field) == ("bad.yaml", line, column, "(syntax)")
    assert words in issue.message
    assert str(caught.value).startswith("bad.yaml: invalid YAML\n  bad.yaml:")


def test_duplicate_keys_name_the_line_of_the_repeat() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("items:\n  - code: A\n    name: x\n    code: B\n", "dup.yaml")
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (4, 5)
    assert 'found duplicate key "code"' in issue.message


def test_a_character_yaml_refuses_names_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: 1\nb: x\x00\n", "ctl.yaml")
    (issue,) = caught.value.issues
    assert (issue.line, issue.field) == (2, "(syntax)")
    assert "unacceptable character #x0000" in issue.message


def test_missing_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"^{missing}: file not found"):
        load_yaml(missing)
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot be read"):
        load_yaml(tmp_path)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: Gr\xfc\xdfe\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        load_yaml(latin1)
    assert "utf-8" in caught.value.issues[0].message
    good = tmp_path / "good.yaml"
    good.write_text(DOCUMENT, encoding="utf-8")
    assert load_yaml(good).file == str(good)


class Price(StrictModel):
    amount: str
    currency: str


class Item(StrictModel):
    code: str
    value: int | str | None = None
    price: Price | None = None
    fields: list[FieldSpec] = Field(default_factory=list)


class Doc(StrictModel):
    items: list[Item]


def test_validation_errors_are_located_by_their_key() -> None:
    text = "items:\n  - code: A\n    colour: red\n  - value: 3\n    price: {amount: '1', currency: EUR, tax: 1}\n"
    issues = issues_of(text, Doc)
    assert [(i.field, i.line, i.column, i.message) for i in issues] == [
        ("items.0.colour", 3, 5, "unknown key"),
        ("items.1.code", 4, 5, "required key is missing"),
        ("items.1.price.tax", 5, 41, "unknown key"),
    ]


def test_a_value_fitting_no_member_of_a_union_is_one_error_at_its_key() -> None:
    """pydantic reports once per union member (`value.int`, `value.str`); the analyst wrote one key."""
    (issue,) = issues_of("items:\n  - code: A\n    value: [1, 2]\n", Doc)
    assert (issue.field, issue.line, issue.column) == ("items.0.value", 3, 5)
    assert issue.message == "Input should be a valid integer or a valid string"


def test_errors_inside_field_specs_name_the_key() -> None:
    text = """\
items:
  - code: A
    fields:
      - name: days
        label: {en: Days}
        type: choice
      - name: when
        label: {EN: When}
        type: date
        default: [2024-01-01]
"""
    issues = issues_of(text, Doc)
    assert [(i.field, i.line, i.message) for i in issues] == [
        # `allowed` is not written: the check of its default is shown at the field.
        ("items.0.fields.0.allowed", 4, "a choice field needs a non-empty list of allowed values"),
        ("items.0.fields.1.label.EN", 8, "String should match pattern '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'"),
        (
            "items.0.fields.1.default",
            10,
            "Input should be a valid boolean, a valid integer, a valid string or a valid date",
        ),
    ]


def test_a_document_that_is_not_a_mapping() -> None:
    for text in ("", "- a\n- b\n", "just text\n"):
        (issue,) = issues_of(text, Doc)
        assert (issue.field, issue.line) == ("(document)", 1)
