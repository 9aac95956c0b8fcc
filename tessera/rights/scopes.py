"""API key scopes: what a key may be used for, on top of (never beyond) its owner's rights.

A scope is `<resource>:<read|write>`; `write` includes `read` of the same resource; `*` is everything the
owner may do. Scopes only narrow: the reach and acting rules still decide which objects a key touches.
"""

from __future__ import annotations

from collections.abc import Iterable

from tessera.errors import FieldIssue, Forbidden, InvalidInput
from tessera.principal import Principal

ALL = "*"
RESOURCES = (
    "catalog",
    "organizations",
    "users",
    "api-keys",
    "tickets",
    "orders",
    "licenses",
    "subscriptions",
    "activations",
    "reports",
    "webhooks",
)
SCOPES: frozenset[str] = frozenset({ALL} | {f"{r}:{a}" for r in RESOURCES for a in ("read", "write")})


def covers(granted: Iterable[str], needed: str) -> bool:
    """Whether a key with `granted` scopes may do what `needed` names."""
    held = set(granted)
    if ALL in held or needed in held:
        return True
    resource, _, action = needed.partition(":")
    return action == "read" and f"{resource}:write" in held


def require_scope(principal: Principal, needed: str) -> None:
    if not covers(principal.scopes, needed):
        raise Forbidden(f"this API key lacks the scope {needed!r}")


def check_new_scopes(principal: Principal, requested: list[str]) -> list[str]:
    """Scopes for a key issued by `principal`: known ones only, and none the issuing key lacks."""
    issues = [
        FieldIssue(f"scopes.{at}", f"unknown scope {scope!r}; known: {', '.join(sorted(SCOPES))}")
        for at, scope in enumerate(requested)
        if scope not in SCOPES
    ]
    if issues:
        raise InvalidInput(issues[0].message, issues=issues)
    beyond = [
        FieldIssue(f"scopes.{at}", f"the key used for this request does not hold {scope!r}")
        for at, scope in enumerate(requested)
        if not (covers(principal.scopes, scope) if scope != ALL else ALL in principal.scopes)
    ]
    if beyond:
        raise Forbidden("a new key cannot carry more than the key that issues it", issues=beyond)
    return sorted(set(requested))
