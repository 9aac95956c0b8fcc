"""Forgotten passwords: ask for a one-time link by e-mail, then choose a new password with it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from api.deps import Session
from api.portal import csrf
from api.portal.deps import AnyPage, Form, Page, text
from api.portal.render import field_errors, redirect, render
from api.portal.routing import PortalRoute
from tessera.auth import resets
from tessera.auth.errors import TooManyAttempts
from tessera.auth.ratelimit import SignInLimiter
from tessera.auth.sessions import end_session
from tessera.errors import InvalidInput, TesseraError

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

FORGOT = "/password/forgot"


def _limiter(request: Request, page: Page) -> SignInLimiter:
    # One per application, made on first use: counts live in this process's memory, like sign-in's.
    state = request.app.state
    limiter: SignInLimiter | None = getattr(state, "password_reset_limiter", None)
    if limiter is None:
        limiter = resets.reset_limiter(page.state.settings)
        state.password_reset_limiter = limiter
    return limiter


def _forgot(
    page: Page,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    email: str = "",
    sent: bool = False,
    too_many: bool = False,
) -> Response:
    return render(
        page,
        "portal/passwords/forgot.html",
        status=status,
        nav="",
        errors=errors or {},
        email=email,
        sent=sent,
        too_many=too_many,
    )


@router.get(FORGOT)
async def forgot_password_page(page: AnyPage, sent: str | None = None) -> Response:
    """The form that asks for a password-reset link."""
    return _forgot(page, sent=bool(sent))


@router.post(FORGOT)
async def request_password_reset(request: Request, page: AnyPage, form: Form, session: Session) -> Response:
    """Send a reset link if an account has this address; the answer is the same either way."""
    email = text(form, "email", max_length=400)
    try:
        await resets.request_reset(
            session,
            resets.ResetPolicy.from_settings(page.state.settings),
            _limiter(request, page),
            email=email,
            client=request.client.host if request.client else "unknown",
        )
    except InvalidInput as error:
        await session.rollback()
        return _forgot(page, status=422, errors=field_errors(error.issues), email=email)
    except TooManyAttempts as error:
        await session.rollback()
        response = _forgot(page, status=429, email=email, too_many=True)
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    return redirect(f"{FORGOT}?sent=1")


async def _reset_form(
    page: Page, session: Session, token: str, *, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    try:
        await resets.usable_reset(session, token)
    except TesseraError as error:
        return render(page, "portal/passwords/unusable.html", status=error.status, nav="", detail=error.detail)
    return render(
        page,
        "portal/passwords/reset.html",
        status=status,
        nav="",
        token=token,
        errors=errors or {},
        min_length=page.state.settings.password_min_length,
    )


@router.get("/password/reset/{token}")
async def reset_password_page(page: AnyPage, session: Session, token: str) -> Response:
    """The form a reset link opens: the new password, twice."""
    return await _reset_form(page, session, token)


@router.post("/password/reset/{token}")
async def reset_password(page: AnyPage, form: Form, session: Session, token: str) -> Response:
    """Set the new password; every browser signed in to the account is signed out, its API keys stay."""
    password = text(form, "password", max_length=2048)
    if password != text(form, "password_repeat", max_length=2048):
        return await _reset_form(
            page, session, token, status=422, errors={"password_repeat": "the two new passwords differ"}
        )
    try:
        await resets.complete_reset(
            session, resets.ResetPolicy.from_settings(page.state.settings), token=token, password=password
        )
    except InvalidInput as error:
        await session.rollback()
        return await _reset_form(page, session, token, status=422, errors=field_errors(error.issues))
    if page.viewer is not None:
        # This browser's session ends too, whoever's it was: the sign-in page would otherwise send it on.
        await end_session(session, page.state.secret_key, page.viewer.session_token)
    response = redirect("/signin?changed=1")
    response.delete_cookie(csrf.SESSION_COOKIE, path="/")
    return response
