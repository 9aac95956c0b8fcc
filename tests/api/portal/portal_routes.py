"""The portal's pages as the application serves them: every route of route class PortalRoute, with its full path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.portal.routing import PortalRoute


@dataclass(frozen=True)
class Served:
    path: str
    methods: frozenset[str]
    route: APIRoute


def portal_routes(app: FastAPI) -> list[Served]:
    """Every portal route, walking included routers (and their prefixes), sorted by path."""
    found: list[Served] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            context = getattr(route, "include_context", None)
            if context is not None:
                walk(route.original_router.routes, prefix + context.prefix)
            elif hasattr(route, "original_router"):  # pragma: no cover - other FastAPI versions
                walk(route.original_router.routes, prefix)
            elif isinstance(route, PortalRoute):
                found.append(Served(prefix + route.path, frozenset(route.methods or ()), route))

    walk(list(app.routes), "")
    return sorted(found, key=lambda served: (served.path, sorted(served.methods)))


def portal_paths(app: FastAPI, method: str) -> set[str]:
    """The path templates of the portal routes answering `method`."""
    return {served.path for served in portal_routes(app) if method in served.methods}
