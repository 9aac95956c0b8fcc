"""The application factory: nothing connects at import time; the lifespan builds and tears down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.deps import AppState, known_query_only
from api.docs import docs_router
from api.fast_refresh import RefreshFastPath
from api.middleware import RequestGate, SecurityHeaders
from api.openapi import install_openapi
from api.portal import install_portal
from api.problems import install_problem_handlers
from api.routes import (
    activations,
    api_keys,
    auth,
    catalog,
    cloud_containers,
    dev_outbox,
    events,
    health,
    invitations,
    jwks,
    licenses,
    orders,
    organizations,
    recovery,
    reports,
    subscription_decisions,
    subscriptions,
    tickets,
    users,
    webhooks,
)
from tessera import __version__
from tessera.activation.runtime import activation_runtime
from tessera.auth.ratelimit import SignInLimiter
from tessera.cloud.binding import register_cloud_kind
from tessera.db import create_engine, create_session_factory
from tessera.settings import Settings, get_settings
from workflows.connection import connect_temporal

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        temporal = await connect_temporal(settings, lazy=True)
        app.state.tessera = AppState(
            settings=settings,
            session_factory=create_session_factory(engine),
            temporal=temporal,
            secret_key=settings.resolved_secret_key(),
            sign_in_limiter=SignInLimiter(settings.sign_in_limit_account, settings.sign_in_limit_client),
        )
        app.state.activation = activation_runtime(
            settings, app.state.tessera.session_factory, app.state.tessera.secret_key
        )
        register_cloud_kind(app.state.activation.limits)
        try:
            yield
        finally:
            await app.state.activation.close()
            await engine.dispose()

    app = FastAPI(
        title="Tessera",
        version=__version__,
        summary="License portal: catalog, organizations, orders, licenses, tickets, activations, subscriptions.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(known_query_only)],
    )
    install_problem_handlers(app)
    app.include_router(docs_router(app))
    app.include_router(health.router)
    # First among the API's routers: routes are matched in order, and device refreshes are the busiest path.
    app.include_router(activations.router, prefix=API_PREFIX)
    app.include_router(catalog.router, prefix=API_PREFIX)
    app.include_router(organizations.router, prefix=API_PREFIX)
    app.include_router(users.router, prefix=API_PREFIX)
    app.include_router(api_keys.router, prefix=API_PREFIX)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(invitations.router, prefix=API_PREFIX)
    app.include_router(tickets.router, prefix=API_PREFIX)
    app.include_router(orders.router, prefix=API_PREFIX)
    app.include_router(licenses.router, prefix=API_PREFIX)
    app.include_router(subscriptions.router, prefix=API_PREFIX)
    app.include_router(subscription_decisions.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(webhooks.router, prefix=API_PREFIX)
    app.include_router(jwks.router)
    app.include_router(cloud_containers.router, prefix=API_PREFIX)
    app.include_router(recovery.router, prefix=API_PREFIX)
    app.include_router(reports.router, prefix=API_PREFIX)
    if settings.dev_outbox:
        app.include_router(dev_outbox.router)
    install_portal(app)
    install_openapi(app)
    # Added last, run first (outermost): headers on every answer, CORS before the gate, the gate before routing.
    app.add_middleware(RequestGate, max_body_bytes=settings.max_body_bytes, routes=app.router.routes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    # Outermost of all: well-formed refreshes answered at once, with what the stack would add to their answers.
    app.add_middleware(RefreshFastPath, max_body_bytes=settings.max_body_bytes)
    return app
