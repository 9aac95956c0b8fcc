"""Server-rendered pages: one Jinja2 environment per language, autoescaped, over `api/templates/portal/`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from api.portal import csrf, i18n
from api.portal.deps import Page
from tessera.errors import FieldIssue

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["localized"] = lambda value: i18n.localized(value, locale)
    return env


def translate(page: Page, message: str, **variables: Any) -> str:
    """A message translated into the page's language, for text built in Python (flash messages)."""
    translated = i18n.translations(page.locale).gettext(message)
    return translated % variables if variables else translated


def field_errors(issues: Sequence[FieldIssue]) -> dict[str, str]:
    """Problems keyed by field, shown next to their inputs; the first message of a field wins."""
    errors: dict[str, str] = {}
    for issue in issues:
        errors.setdefault(issue.field, issue.message)
    return errors


def render(page: Page, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment(page.locale).get_template(template).render(page=page, viewer=page.viewer, **context)
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    remember_binding(page, response)
    return response


def remember_binding(page: Page, response: HTMLResponse | RedirectResponse) -> None:
    """Set the pre-sign-in CSRF cookie the page's forms were bound to, when the browser had none."""
    if page.new_csrf_cookie:
        response.set_cookie(
            csrf.ANONYMOUS_COOKIE,
            page.csrf_binding,
            httponly=True,
            samesite="lax",
            secure=is_secure(page),
            path="/",
        )


def is_secure(page: Page) -> bool:
    """Cookies are `Secure` behind https (the portal URL says so, or the request came over it)."""
    return page.request.url.scheme == "https" or page.state.settings.portal_url.startswith("https://")


def redirect(url: str) -> RedirectResponse:
    """After a successful POST: 303 so the browser GETs the next page (a reload does not resubmit)."""
    return RedirectResponse(url, status_code=303)


def with_query(path: str, values: Mapping[str, str]) -> str:
    query = "&".join(f"{quote(key)}={quote(value, safe='')}" for key, value in values.items() if value)
    return f"{path}?{query}" if query else path


def local_path(candidate: str | None, default: str = "/") -> str:
    """A redirect target only if it is a path on this site (no scheme, no `//host`): no open redirects."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    return candidate
