"""`config/workflows.yaml` in, a checked `WorkflowsConfig` out, or every problem with file, line and column.

Pydantic's messages are rewritten here for analysts: an unknown key names the keys allowed at that place, an
unknown step kind or choice names the choices, and a condition's error points at the column inside it.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from tessera.email.locales import translated_name, translations
from tessera.errors import ConfigError, FieldIssue
from tessera.processes.checks import CatalogCodes, Problem, config_problems
from tessera.processes.schema import ProcessName, WorkflowsConfig
from tessera.processes.steps import STEP_KINDS
from tessera.yamlsource import PathPart, YamlDocument, dotted, parse_yaml


def load_workflows(path: Path, templates_dir: Path, catalog: CatalogCodes | None = None) -> WorkflowsConfig:
    """Parse and check the file; raise ConfigError listing every problem found.

    `catalog`, when given, lets overrides be checked against the product groups and products that exist; the
    CLI passes `config/catalog.yaml`'s codes, a caller holding the database may pass the database's.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issue = FieldIssue("(file)", f"cannot read: {exc.strerror or exc}", file=str(path))
        raise ConfigError(f"{path}: cannot read the file", issues=[issue]) from exc
    return parse_workflows(text, str(path), templates_dir, catalog)


def parse_workflows(text: str, name: str, templates_dir: Path, catalog: CatalogCodes | None = None) -> WorkflowsConfig:
    document = parse_yaml(text, name)
    try:
        config = WorkflowsConfig.model_validate(document.data)
    except ValidationError as exc:
        issues = [_shape_issue(document, error) for error in exc.errors()]
        raise ConfigError(f"{name}: {len(issues)} error(s)", issues=_sorted(issues)) from None
    problems = config_problems(config, templates_dir, catalog)
    if problems:
        issues = [_problem_issue(document, text, problem) for problem in problems]
        raise ConfigError(f"{name}: {len(issues)} error(s)", issues=_sorted(issues))
    return config.with_templates(read_templates(templates_dir, config.template_names()))


def read_templates(templates_dir: Path, names: set[str]) -> dict[str, str]:
    """The text of each named template (checked to exist above) and of its translations (`de/<name>`), to travel
    with the steps that use it."""
    texts: dict[str, str] = {}
    for template in sorted(names):
        files = {template: templates_dir / template}
        files |= {
            translated_name(locale, template): path for locale, path in translations(templates_dir, template).items()
        }
        for key, path in files.items():
            try:
                texts[key] = path.read_text(encoding="utf-8")
            except OSError as exc:
                issue = FieldIssue("(template)", f"cannot read: {exc.strerror or exc}", file=str(path))
                raise ConfigError(f"template {key!r} cannot be read", issues=[issue]) from exc
    return texts


def _sorted(issues: list[FieldIssue]) -> list[FieldIssue]:
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.column or 0))


def _problem_issue(document: YamlDocument, text: str, problem: Problem) -> FieldIssue:
    if problem.inside is None:
        return document.issue(problem.path, problem.message)
    line, column = _condition_position(document, text, problem.path, problem.inside)
    return FieldIssue(dotted(problem.path), problem.message, line=line, column=column, file=document.file)


def _condition_position(
    document: YamlDocument, text: str, path: Sequence[PathPart], inside: tuple[int, int]
) -> tuple[int, int]:
    """File position of a spot inside a condition: exact for one-line scalars, else where the value starts."""
    parent: Any = document._tree
    for part in path[:-1]:
        parent = parent[part]
    if not isinstance(parent, CommentedMap):
        return document.locate(path)
    value_line, value_column = parent.lc.value(path[-1])
    source = text.splitlines()[value_line] if value_line < len(text.splitlines()) else ""
    # A quoted scalar's text starts one column after its quote.
    start = value_column + (1 if source[value_column : value_column + 1] in ("'", '"') else 0)
    line_in, column_in = inside
    if line_in != 1 or not source.startswith(str(parent[path[-1]]), start):
        # Block, folded or escaped: the text differs from the line, so point at where the value starts.
        return value_line + 1, value_column + 1
    return value_line + 1, start + column_in


def _shape_issue(document: YamlDocument, error: Any) -> FieldIssue:
    path, model = _walk(tuple(error["loc"]))
    kind, value = error["type"], error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden" and model is WorkflowsConfig:
        message = f"unknown process {path[-1]!r}; the processes are: {', '.join(ProcessName)}"
    elif kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields) if model is not None else "(see the file's header)"
        message = f"unknown key {path[-1]!r}; allowed here: {allowed}"
    elif kind == "missing" and len(path) == 1:
        message = f"the process {path[0]!r} is missing; every process needs its steps (one may be a notify)"
    elif kind == "missing":
        message = f"required key {path[-1]!r} is missing"
    elif kind == "union_tag_invalid":
        path = (*path, "kind")
        message = f"unknown step kind {error['ctx']['tag']!r}; choose one of: {', '.join(STEP_KINDS)}"
    elif kind == "union_tag_not_found":
        message = f"every step needs a kind: one of {', '.join(STEP_KINDS)}"
    elif kind in ("enum", "literal_error"):
        expected = str(error["ctx"]["expected"]).replace("'", "")
        message = f"{value!r} is not allowed here; choose {expected}"
    elif kind == "too_short" and path and path[-1] == "steps":
        message = "a process needs at least one step"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message} (found {value!r})"
    return document.issue(path, message)


def _walk(loc: tuple[PathPart, ...]) -> tuple[tuple[PathPart, ...], type[BaseModel] | None]:
    """Clean a pydantic location of union tags and find the model owning its last key."""
    current: Any = WorkflowsConfig
    owner: type[BaseModel] | None = WorkflowsConfig
    path: list[PathPart] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic names validators and union members in locations; they are not keys
        current = _unwrap(current)
        members = _union_members(current)
        if members is not None:
            tagged = [member for member in members if _tag(member) == part]
            if tagged:
                current = tagged[0]
                continue
            current = next((member for member in members if isinstance(part, int) == _is_list(member)), None)
            current = _unwrap(current)
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif _is_list(current):
            owner, current = None, get_args(current)[0]
        else:
            owner, current = None, None
    return tuple(path), owner


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> list[Any] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return [_unwrap(arg) for arg in get_args(annotation) if arg is not type(None)]
    return None


def _is_list(annotation: Any) -> bool:
    return get_origin(_unwrap(annotation)) is list


def _tag(member: Any) -> str | None:
    if isinstance(member, type) and issubclass(member, BaseModel) and "kind" in member.model_fields:
        literal = member.model_fields["kind"].annotation
        if get_origin(literal) is Literal:
            return str(get_args(literal)[0])
    return None
