"""My account: name and language, and a new password (which signs every browser out)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import Session
from api.portal import csrf
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from tessera.auth import accounts
from tessera.errors import InvalidInput

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _account_page(page: Page, *, status: int = 200, errors: dict[str, str] | None = None, flash: str = "") -> Response:
    return render(
        page,
        "portal/account.html",
        status=status,
        nav="account",
        errors=errors or {},
        flash=flash,
        locales=accounts.LOCALE_CHOICES,
        min_length=page.state.settings.password_min_length,
    )


@router.get("/account")
async def account_page(page: SignedInPage, saved: str | None = None) -> Response:
    """My account."""
    flash = translate(page, "Your profile is saved.") if saved == "profile" else ""
    return _account_page(page, flash=flash)


@router.post("/account/profile")
async def save_profile(page: SignedInPage, form: Form, session: Session) -> Response:
    """Save my name and language."""
    assert page.viewer is not None
    try:
        await accounts.update_profile(
            session, page.viewer.user_id, name=text(form, "name", max_length=400), locale=text(form, "locale")
        )
    except InvalidInput as error:
        await session.rollback()
        return _account_page(page, status=422, errors=field_errors(error.issues))
    return redirect("/account?saved=profile")


@router.post("/account/password")
async def save_password(page: SignedInPage, form: Form, session: Session) -> Response:
    """Change my password: every session of the account ends, this one too, so sign in again."""
    assert page.viewer is not None
    new = text(form, "password", max_length=2048)
    if new != text(form, "password_repeat", max_length=2048):
        return _account_page(page, status=422, errors={"password_repeat": "the two new passwords differ"})
    try:
        await accounts.change_password(
            session,
            page.viewer.user_id,
            current=text(form, "current_password", max_length=2048),
            new=new,
            min_length=page.state.settings.password_min_length,
        )
    except InvalidInput as error:
        await session.rollback()
        return _account_page(page, status=422, errors=field_errors(error.issues))
    response = redirect("/signin?changed=1")
    response.delete_cookie(csrf.SESSION_COOKIE, path="/")
    return response
