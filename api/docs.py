"""The API documentation pages (Swagger UI at /docs, ReDoc at /redoc), served from the installed package.

Nothing is fetched from a CDN, so the docs work offline; each page carries a Content-Security-Policy that
admits exactly its own inline script (by hash) and the bundled files.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from tessera.errors import NotFound

STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
STATIC_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
DOCS_STATIC = "/docs/static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page_csp(html: str, *, allow_eval: bool = False) -> str:
    """A CSP for a docs page: its inline scripts by hash, bundled files, inline styles (Swagger UI sets them)."""
    hashes = ("'unsafe-eval' " if allow_eval else "") + " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; worker-src blob:; font-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _page(response: HTMLResponse, *, allow_eval: bool = False) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = page_csp(bytes(response.body).decode(), allow_eval=allow_eval)
    return response


def docs_router(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI for the OpenAPI document."""
        root = request.scope.get("root_path", "")
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API docs",
                oauth2_redirect_url=f"{root}{redirect_url}",
                swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
                # Swagger UI would otherwise ask an online validator for a badge: nothing leaves the machine.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @router.get(redirect_url)
    async def swagger_ui_redirect() -> HTMLResponse:
        """Swagger UI's OAuth2 redirect page."""
        return _page(get_swagger_ui_oauth2_redirect_html())

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc for the OpenAPI document."""
        root = request.scope.get("root_path", "")
        return _page(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API reference",
                redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
                with_google_fonts=False,
            ),
            # ReDoc compiles JSON schemas into functions (Ajv); the page holds no secrets, unlike Swagger UI's.
            allow_eval=True,
        )

    @router.get(DOCS_STATIC + "/{name}")
    async def docs_static(name: str) -> FileResponse:
        """A file of the bundled Swagger UI or ReDoc."""
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            raise NotFound(f"no docs file {name!r}")
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"})

    return router
