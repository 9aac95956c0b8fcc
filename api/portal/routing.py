"""The route class of every page: errors become pages (or a redirect to sign in), never problem JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from api.deps import AppState
from api.portal.deps import SignInRequired, build_page, find_viewer
from api.portal.render import redirect, render
from tessera.errors import FieldIssue, TesseraError

log = logging.getLogger(__name__)


async def error_page(request: Request, status: int, detail: str, issues: list[FieldIssue]) -> Response:
    state: AppState = request.app.state.tessera
    failed = getattr(request.state, "portal_session", None)
    if isinstance(failed, AsyncSession):
        # The failed page's unit of work may still hold a write (a key's last use): a second session reading the
        # same key would wait for it. Undo it and read who is looking in the same session, writing nothing.
        await failed.rollback()
        try:
            page = await build_page(request, state, await find_viewer(request, state, failed))
        finally:
            await failed.rollback()
    else:
        async with state.session_factory() as session:
            page = await build_page(request, state, await find_viewer(request, state, session))
    return render(page, "portal/error.html", status=status, nav="", status_code=status, detail=detail, issues=issues)


class PortalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                if request.method != "GET":
                    # A form posted after the session ended: its target cannot be opened, so start over.
                    return redirect("/signin")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(f"/signin?next={quote(target, safe='')}")
            except TesseraError as error:
                return await error_page(request, error.status, error.detail, list(error.issues))
            except RequestValidationError as error:
                # Path and query values of pages come from links; a malformed one is a page that does not exist.
                log.info("portal: %s %s refused: %s", request.method, request.url.path, error.errors()[:1])
                return await error_page(request, 404, "there is no such page", [])

        return handler
