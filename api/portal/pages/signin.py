"""Signing in and out: a session cookie (HttpOnly, SameSite=Lax, Secure behind https), rate limited sign-in."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import Session
from api.portal import csrf
from api.portal.deps import AnyPage, Form, text
from api.portal.render import is_secure, local_path, redirect, render
from api.portal.routing import PortalRoute
from tessera.auth.errors import SignInFailed, TooManyAttempts
from tessera.auth.sessions import end_session, start_session

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

HOME = "/tickets"


@router.get("/")
async def portal_home(page: AnyPage) -> Response:
    """The portal's entry: my tickets when signed in, else the sign-in page."""
    return redirect(HOME if page.viewer else "/signin")


@router.get("/signin")
async def sign_in_page(page: AnyPage, next: str | None = None, changed: str | None = None) -> Response:  # noqa: A002
    """The sign-in form."""
    if page.viewer is not None:
        return redirect(local_path(next, HOME))
    message = "changed" if changed else ""
    return render(page, "portal/signin.html", next=local_path(next, ""), email="", message=message)


@router.post("/signin")
async def submit_sign_in(page: AnyPage, form: Form, session: Session) -> Response:
    """Sign in with e-mail and password: a wrong pair and an unknown address get the same answer."""
    email = text(form, "email", max_length=320)
    target = local_path(text(form, "next"), HOME)
    try:
        _key, token = await start_session(
            session,
            page.state.secret_key,
            page.state.sign_in_limiter,
            email=email,
            password=text(form, "password", max_length=1024),
            client=page.request.client.host if page.request.client else "unknown",
            lifetime=page.state.settings.portal_session_lifetime,
        )
    except (SignInFailed, TooManyAttempts) as error:
        await session.rollback()
        status = error.status
        message = "wrong_pair" if isinstance(error, SignInFailed) else "too_many"
        return render(page, "portal/signin.html", status=status, next=target, email=email, message=message)
    response = redirect(target)
    response.set_cookie(
        csrf.SESSION_COOKIE,
        token,
        max_age=int(page.state.settings.portal_session_lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=is_secure(page),
        path="/",
    )
    response.delete_cookie(csrf.ANONYMOUS_COOKIE, path="/")
    return response


@router.post("/signout")
async def sign_out(page: AnyPage, _form: Form, session: Session) -> Response:
    """End the session: the cookie's key is revoked, so a copy of the cookie stops working too."""
    if page.viewer is not None:
        await end_session(session, page.state.secret_key, page.viewer.session_token)
    response = redirect("/signin")
    response.delete_cookie(csrf.SESSION_COOKIE, path="/")
    return response
