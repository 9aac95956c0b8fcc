"""YAML files that analysts edit, loaded so that every error can name its file, line and column.

A document is parsed with ruamel.yaml's round-trip loader (which remembers positions), turned into plain
Python data for pydantic, and kept beside it so that an error path such as `products.2.fields.0.default` can be
mapped back to the line where that value stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from tessera.errors import ConfigError, FieldIssue
from tessera.schema_base import key_path, one_per_field

PathPart = str | int
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class YamlDocument:
    file: str
    data: Any
    _tree: Any

    def locate(self, path: Sequence[PathPart]) -> tuple[int, int]:
        """1-based line and column of the deepest node of `path` that exists in the file."""
        node: Any = self._tree
        line, column = 1, 1
        for part in path:
            if isinstance(node, CommentedMap) and part in node:
                key_line, key_col = node.lc.key(part)
                line, column = key_line + 1, key_col + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                item_line, item_col = node.lc.item(part)
                line, column = item_line + 1, item_col + 1
                node = node[part]
            else:
                if isinstance(node, CommentedMap | CommentedSeq) and (line, column) == (1, 1):
                    line, column = node.lc.line + 1, node.lc.col + 1
                break
        return line, column

    def issue(self, path: Sequence[PathPart], message: str) -> FieldIssue:
        line, column = self.locate(path)
        return FieldIssue(field=dotted(path), message=message, line=line, column=column, file=self.file)

    def validate(self, model: type[M], *, context: dict[str, Any] | None = None) -> M:
        """Validate the whole document; every pydantic error becomes a located issue."""
        try:
            return model.model_validate(self.data, context=context)
        except ValidationError as exc:
            issues = [self.issue(key_path(self.data, error["loc"]), _message(error)) for error in exc.errors()]
            issues = one_per_field(issues)
            raise ConfigError(f"{self.file}: {len(issues)} error(s)", issues=issues) from exc


def dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(part) for part in path) or "(document)"


def _message(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")


def load_yaml(path: Path) -> YamlDocument:
    """Parse `path`; syntax errors and duplicate keys become a ConfigError naming the line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: file not found", issues=[FieldIssue("(file)", "not found", file=name)]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{name}: cannot be read", issues=[FieldIssue("(file)", reason, file=name)]) from exc
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> YamlDocument:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        issue = FieldIssue("(syntax)", problem or "invalid YAML", line=line, column=column, file=name)
        raise ConfigError(f"{name}: invalid YAML", issues=[issue]) from exc
    except YAMLError as exc:
        # Not a MarkedYAMLError: e.g. a control character the reader refuses, which it locates by offset only.
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc, ReaderError) else None
        issue = FieldIssue("(syntax)", str(exc).splitlines()[0], line=line, file=name)
        raise ConfigError(f"{name}: invalid YAML", issues=[issue]) from exc
    return YamlDocument(file=name, data=_plain(tree), _tree=tree)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, ScalarBoolean):
        # ruamel keeps an anchored `true` as ScalarBoolean, a subclass of int, not of bool.
        return bool(node)
    if node is not None and type(node).__module__.startswith("ruamel"):
        # ruamel wraps scalars (ScalarFloat, ScalarInt, ...) in subclasses of the builtin types.
        for builtin in (bool, int, float, str):
            if isinstance(node, builtin):
                return builtin(node)
    return node
