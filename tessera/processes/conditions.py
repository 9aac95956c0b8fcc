"""Conditions (`when:`) in CEL, the Common Expression Language: parsed by cel-python, never by Python `eval`.

`check_condition` runs at load time: it parses the text and type-checks it against the declared roots (see
`facts.py`), so an unknown name or field, a comparison of a number with a string, or a condition that is not
true/false is a load error pointing into the expression. `evaluate` runs it later; it is deterministic (CEL
has no clock, no I/O, no randomness) and so may run inside workflow code.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union, get_args, get_origin

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from tessera.errors import TesseraError
from tessera.processes.facts import ROOT_MODELS, ConditionContext


class ConditionProblem(Exception):
    """A condition that cannot work; `line`/`column` are 1-based positions inside the expression text."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class ConditionError(TesseraError):
    """A condition failed while evaluated, e.g. a product field the order does not carry."""

    status = 422
    code = "condition-error"
    title = "Condition could not be evaluated"


@dataclass(frozen=True)
class CelType:
    name: str
    item: CelType | None = None  # element of a list, value of a map
    root: str | None = None  # for the roots: whose declared fields apply

    def __str__(self) -> str:
        if self.root:
            return self.root
        return f"{self.name}({self.item})" if self.item else self.name


DYN, BOOL, INT, UINT, DOUBLE = CelType("dyn"), CelType("bool"), CelType("int"), CelType("uint"), CelType("double")
STRING, BYTES, NULL = CelType("string"), CelType("bytes"), CelType("null")
TIMESTAMP, DURATION = CelType("timestamp"), CelType("duration")
_NUMBERS = {"int", "uint", "double"}
_LITERALS = {
    "INT_LIT": INT,
    "UINT_LIT": UINT,
    "FLOAT_LIT": DOUBLE,
    "STRING_LIT": STRING,
    "MLSTRING_LIT": STRING,
    "BYTES_LIT": BYTES,
    "BOOL_LIT": BOOL,
    "NULL_LIT": NULL,
}
_CONVERSIONS = {"int": INT, "uint": UINT, "double": DOUBLE, "string": STRING, "timestamp": TIMESTAMP}
_CONVERSIONS |= {"duration": DURATION, "dyn": DYN, "bool": BOOL}
_FUNCTIONS = ("has", "size", "matches", *_CONVERSIONS)
_STRING_METHODS = ("contains", "startsWith", "endsWith", "matches")
_MACROS = ("all", "exists", "exists_one", "filter", "map")
_METHODS = ("size", *_STRING_METHODS, *_MACROS)


def _cel_type(annotation: Any) -> CelType:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _cel_type(members[0]) if len(members) == 1 else DYN
    if origin is list:
        return CelType("list", _cel_type(get_args(annotation)[0]))
    if origin is dict:
        return CelType("map", _cel_type(get_args(annotation)[1]))
    return {str: STRING, int: INT, bool: BOOL}.get(annotation, DYN)


ROOT_FIELDS: dict[str, dict[str, CelType]] = {
    root: {name: _cel_type(field.annotation) for name, field in model.model_fields.items()}
    for root, model in ROOT_MODELS.items()
}


def check_condition(text: str, roots: Iterable[str], process: str = "this process") -> None:
    """Raise ConditionProblem unless `text` parses, uses only `roots` and their fields, and gives true/false."""
    try:
        tree = _parse(text)
    except CELParseError as exc:
        line, column = getattr(exc, "line", None) or 1, getattr(exc, "column", None) or 1
        raise ConditionProblem(f"syntax error in the condition: {_pointer(text, line, column)}", line, column) from None
    result = _Checker(tuple(roots), process).check(tree)
    if result.name not in ("bool", "dyn"):
        raise ConditionProblem(
            f"the condition gives {_a(result)}, not true or false; compare it, e.g. `order.quantity > 10`"
        )


def evaluate(expression: str, context: ConditionContext) -> bool:
    """Evaluate a checked condition; a missing value or a non-boolean result raises ConditionError."""
    activation = {
        root: json_to_cel(value.model_dump(mode="json"))
        for root in ROOT_MODELS
        if (value := getattr(context, root)) is not None
    }
    missing = [root for root in _roots_used(expression) if root not in activation]
    if missing:
        raise ConditionError(f"`{expression}` uses {', '.join(missing)}, which this context does not provide")
    try:
        result = _program(expression).evaluate(activation)
    except (CELEvalError, CELParseError) as exc:
        raise ConditionError(f"cannot evaluate `{expression}`: {_eval_reason(exc)}") from None
    if isinstance(result, CELEvalError):
        raise ConditionError(f"cannot evaluate `{expression}`: {_eval_reason(result)}")
    if not isinstance(result, celtypes.BoolType):
        raise ConditionError(f"`{expression}` gives {result!r}, not true or false")
    return bool(result)


def _a(kind: CelType) -> str:
    text = str(kind)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _eval_reason(exc: Exception) -> str:
    reason = str(exc.args[0]) if exc.args else str(exc)
    if "no such member" in reason:
        return reason + " (guard optional values with has(), e.g. has(order.fields.x) && order.fields.x > 1)"
    return reason


@lru_cache(maxsize=1024)
def _parse(text: str) -> lark.Tree[Any]:
    return celpy.Environment().compile(text)


@lru_cache(maxsize=1024)
def _roots_used(text: str) -> tuple[str, ...]:
    names = {str(token) for token in _parse(text).scan_values(lambda value: isinstance(value, lark.Token))}
    return tuple(root for root in ROOT_MODELS if root in names)


@lru_cache(maxsize=1024)
def _program(text: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(text))


def _pointer(text: str, line: int, column: int) -> str:
    source = text.splitlines()[line - 1] if text.splitlines() else text
    return f"unexpected input at column {column} of `{source}`"


def _where(node: lark.Tree[Any] | lark.Token) -> tuple[int, int]:
    if isinstance(node, lark.Token):
        return node.line or 1, node.column or 1
    meta = node.meta
    return (getattr(meta, "line", None) or 1), (getattr(meta, "column", None) or 1)


class _Checker:
    """Infers the CEL type of each node; `dyn` (a field value, a map entry) is checked only at run time."""

    def __init__(self, roots: tuple[str, ...], process: str) -> None:
        self.roots, self.process = roots, process
        self.variables: dict[str, CelType] = {}

    def fail(self, node: lark.Tree[Any] | lark.Token, message: str) -> ConditionProblem:
        return ConditionProblem(message, *_where(node))

    def check(self, node: lark.Tree[Any]) -> CelType:
        kids = node.children
        method = getattr(self, f"_{node.data}", None)
        if method is not None:
            result: CelType = method(node, *kids)
            return result
        if len(kids) == 1 and isinstance(kids[0], lark.Tree):
            return self.check(kids[0])  # a pass-through level of the grammar
        raise self.fail(node, f"this form ({node.data}) is not supported in conditions")

    def want(self, node: lark.Tree[Any], expected: CelType, what: str) -> CelType:
        found = self.check(node)
        if found.name not in (expected.name, "dyn"):
            raise self.fail(node, f"{what} must be {expected.name}, not {found}")
        return found

    def _expr(self, _node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        if len(kids) == 1:
            return self.check(kids[0])
        self.want(kids[0], BOOL, "the test before `?`")
        then, otherwise = self.check(kids[1]), self.check(kids[2])
        return then if then == otherwise else DYN

    def _conditionalor(self, _node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        if len(kids) == 1:
            return self.check(kids[0])
        for kid in kids:
            self.want(kid, BOOL, "each side of `||` and `&&`")
        return BOOL

    _conditionaland = _conditionalor

    def _relation(self, node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        if len(kids) == 1:
            return self.check(kids[0])
        operator = kids[0].data.removeprefix("relation_")
        left, right = self.check(kids[0].children[0]), self.check(kids[1])
        if operator == "in":
            if right.name not in ("list", "map", "dyn"):
                raise self.fail(kids[1], f"`in` needs a list or a map on its right, not {right}")
            self._comparable(node, left, right.item or DYN)
        elif operator in ("eq", "ne"):
            self._comparable(node, left, right)
        else:
            self._comparable(node, left, right)
            if {left.name, right.name} - {"dyn", "string", "timestamp", "duration", "bytes", *_NUMBERS}:
                raise self.fail(node, f"{left} and {right} cannot be ordered with < or >")
        return BOOL

    def _comparable(self, node: lark.Tree[Any], left: CelType, right: CelType) -> None:
        names = {left.name, right.name}
        if "dyn" in names or "null" in names or len(names) == 1:
            return
        hint = " (write 10, not 10.0)" if names <= _NUMBERS else ""
        raise self.fail(node, f"cannot compare {left} with {right}{hint}")

    def _addition(self, node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        if len(kids) == 1:
            return self.check(kids[0])
        left, right = self.check(kids[0].children[0]), self.check(kids[1])
        self._comparable(node, left, right)
        return left if left.name != "dyn" else right

    _multiplication = _addition

    def _unary(self, node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        if len(kids) == 1:
            return self.check(kids[0])
        if kids[0].data == "unary_not":
            return self.want(kids[1], BOOL, "the operand of `!`")
        found = self.check(kids[1])
        if found.name not in (*_NUMBERS, "dyn"):
            raise self.fail(node, f"cannot negate {found}")
        return found

    def _literal(self, _node: lark.Tree[Any], token: lark.Token) -> CelType:
        return _LITERALS.get(token.type, DYN)

    def _paren_expr(self, _node: lark.Tree[Any], inner: lark.Tree[Any]) -> CelType:
        return self.check(inner)

    def _list_lit(self, _node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        items = [self.check(kid) for kid in kids[0].children] if kids else []
        return CelType("list", items[0] if items and all(item == items[0] for item in items) else DYN)

    def _map_lit(self, _node: lark.Tree[Any], *kids: lark.Tree[Any]) -> CelType:
        values = [self.check(kid) for kid in kids[0].children] if kids else []
        return CelType("map", DYN if not values else values[1])

    def _ident(self, _node: lark.Tree[Any], token: lark.Token) -> CelType:
        name = str(token)
        if name in self.variables:
            return self.variables[name]
        if name in self.roots:
            return CelType("object", root=name)
        available = ", ".join(self.roots) or "none"
        if name in ROOT_MODELS:
            raise self.fail(token, f"{name!r} is not available in {self.process} conditions; use: {available}")
        raise self.fail(token, f"unknown name {name!r}; conditions in {self.process} can use: {available}")

    def _member_dot(self, _node: lark.Tree[Any], receiver: lark.Tree[Any], field: lark.Token) -> CelType:
        return self._field(self.check(receiver), field)

    def _field(self, owner: CelType, field: lark.Token) -> CelType:
        name = str(field)
        if owner.root is not None:
            fields = ROOT_FIELDS[owner.root]
            if name not in fields:
                raise self.fail(field, f"{owner.root} has no field {name!r}; its fields: {', '.join(fields)}")
            return fields[name]
        if owner.name == "map":
            return owner.item or DYN
        if owner.name == "dyn":
            return DYN
        raise self.fail(field, f"a {owner} has no fields (looking up {name!r})")

    def _member_index(self, _node: lark.Tree[Any], receiver: lark.Tree[Any], index: lark.Tree[Any]) -> CelType:
        owner, key = self.check(receiver), self.check(index)
        if owner.name == "list":
            self._comparable(index, key, INT)
            return owner.item or DYN
        if owner.name in ("map", "dyn"):
            return owner.item or DYN
        if owner.root is not None:
            raise self.fail(index, f"use {owner.root}.<field> rather than {owner.root}[...]")
        raise self.fail(index, f"a {owner} cannot be indexed")

    def _member_dot_arg(self, _node: lark.Tree[Any], receiver: lark.Tree[Any], *rest: Any) -> CelType:
        method, args = str(rest[0]), (list(rest[1].children) if len(rest) > 1 else [])
        owner = self.check(receiver)
        if method in _MACROS:
            return self._macro(rest[0], method, owner, args)
        if method not in _METHODS:
            raise self.fail(rest[0], f"unknown function {method!r}; available: {', '.join(_METHODS)}")
        arg_types = [self.check(arg) for arg in args]
        if method == "size":
            return INT
        if owner.name not in ("string", "dyn") or len(arg_types) != 1:
            raise self.fail(rest[0], f'{method} applies to a string, with one argument: s.{method}("text")')
        return BOOL

    def _macro(self, token: lark.Token, method: str, owner: CelType, args: list[lark.Tree[Any]]) -> CelType:
        if owner.name not in ("list", "map", "dyn"):
            raise self.fail(token, f"{method} applies to a list or a map, not {owner}")
        variable = _plain_ident(args[0]) if len(args) == 2 else None
        if variable is None:
            raise self.fail(token, f"write {method}(x, <condition on x>)")
        element = STRING if owner.name == "map" else owner.item or DYN
        saved = dict(self.variables)
        self.variables[variable] = element
        try:
            body = self.check(args[1])
        finally:
            self.variables = saved
        if method in ("all", "exists", "exists_one", "filter") and body.name not in ("bool", "dyn"):
            raise self.fail(args[1], f"the condition inside {method} must give true or false, not {body}")
        if method == "filter":
            return CelType("list", element)
        return CelType("list", body) if method == "map" else BOOL

    def _ident_arg(self, _node: lark.Tree[Any], name_token: lark.Token, *rest: lark.Tree[Any]) -> CelType:
        name, args = str(name_token), (list(rest[0].children) if rest else [])
        if name not in _FUNCTIONS:
            raise self.fail(name_token, f"unknown function {name!r}; available: {', '.join(_FUNCTIONS)}")
        if name == "has":
            return self._has(name_token, args)
        for arg in args:
            self.check(arg)
        if name == "size":
            return INT
        return BOOL if name == "matches" else _CONVERSIONS[name]

    def _has(self, token: lark.Token, args: list[lark.Tree[Any]]) -> CelType:
        dotted = _member_dot_of(args[0]) if len(args) == 1 else None
        if dotted is None:
            raise self.fail(token, "write has(<something>.<field>), e.g. has(order.fields.trial_days)")
        receiver, field = dotted
        self._field(self.check(receiver), field)
        return BOOL


def _descend(node: lark.Tree[Any]) -> lark.Tree[Any]:
    # Down through the single-child levels (expr → conditionalor → ... → member) to the first real construct.
    while len(node.children) == 1 and isinstance(node.children[0], lark.Tree):
        node = node.children[0]
    return node


def _plain_ident(node: lark.Tree[Any]) -> str | None:
    inner = _descend(node)
    return str(inner.children[0]) if inner.data == "ident" else None


def _member_dot_of(node: lark.Tree[Any]) -> tuple[lark.Tree[Any], lark.Token] | None:
    inner = _descend(node)
    if inner.data == "member_dot":
        receiver, field = inner.children
        if isinstance(receiver, lark.Tree) and isinstance(field, lark.Token):
            return receiver, field
    return None
