"""The portal: server-rendered pages for people, on the same application and authorization service as the API.

A signed-in browser holds a session (an API key of kind `session`, see tessera.auth.sessions) in an HttpOnly
cookie; each page resolves it to the principal the API would see and calls the same services, so the portal has
no authorization rule of its own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.portal.pages import (
    account,
    activations,
    api_keys,
    approvals,
    cloud,
    grants,
    invitations,
    licenses,
    my_tickets,
    offline,
    orders,
    organizations,
    passwords,
    reports,
    signin,
    subscriptions,
    ticket_admin,
    webhooks,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_MODULES = (
    signin,
    account,
    invitations,
    passwords,
    api_keys,
    my_tickets,
    activations,
    cloud,
    offline,
    licenses,
    orders,
    approvals,
    subscriptions,
    reports,
    webhooks,
    organizations,
    ticket_admin,
    grants,
)


def install_portal(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in PAGE_MODULES:
        app.include_router(module.router)
