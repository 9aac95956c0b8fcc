"""Accepting an invitation: the page the invitation e-mail links to, on the service the API's redeem uses."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.deps import Session
from api.portal import csrf
from api.portal.deps import AnyPage, Form, Page, text
from api.portal.render import field_errors, is_secure, redirect, render
from api.portal.routing import PortalRoute
from api.schemas.auth import InvitationRedeem
from tessera.auth import invitations
from tessera.auth.sessions import open_session
from tessera.errors import FieldIssue, InvalidInput, TesseraError
from tessera.models import Invitation, Organization, User

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

HOME = "/tickets"
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def set_session_cookie(page: Page, response: Response, token: str) -> None:
    """Hand the browser its session (the same cookie the sign-in page sets)."""
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


def _private(response: HTMLResponse | RedirectResponse) -> Response:
    # The address carries a credential: keep it out of caches and of the Referer of any link followed from here.
    response.headers.update({"Cache-Control": "no-store", **NO_REFERRER})
    return response


async def _account(session: Session, invitation: Invitation) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == invitation.email))


async def _form(
    page: Page,
    session: Session,
    token: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    email: str = "",
    name: str = "",
) -> Response:
    try:
        invitation = await invitations.usable_invitation(session, token)
    except TesseraError as error:
        return _private(
            render(page, "portal/invitations/unusable.html", status=error.status, nav="", detail=error.detail)
        )
    account = await _account(session, invitation)
    organization = await session.get(Organization, invitation.organization_id) if invitation.organization_id else None
    viewer = page.viewer
    other_person = viewer is not None and viewer.user.email.lower() != invitation.email
    return _private(
        render(
            page,
            "portal/invitations/accept.html",
            status=status,
            nav="",
            token=token,
            errors=errors or {},
            email=email or (viewer.user.email if viewer is not None and not other_person else ""),
            name=name or invitation.name,
            organization=organization.name if organization else "",
            role=invitation.role,
            needs_password=account is None or account.password_hash is None,
            other_person=other_person,
            min_length=page.state.settings.password_min_length,
        )
    )


def _checked(token: str, email: str, password: str, name: str) -> InvitationRedeem:
    """The fields as the API's redeem checks them, so the page refuses what the API refuses, in its words."""
    try:
        return InvitationRedeem.model_validate(
            {"token": token, "email": email, "password": password or None, "name": name or None}
        )
    except ValidationError as error:
        raise schema_refusal(error) from None


def schema_refusal(error: ValidationError) -> InvalidInput:
    """An API schema's refusal as the service's error, each problem on its field (first part of its location)."""
    issues = [
        FieldIssue(
            ".".join(str(part) for part in problem["loc"]) or "form", problem["msg"].removeprefix("Value error, ")
        )
        for problem in error.errors()
    ]
    return InvalidInput(issues[0].message, issues=issues)


@router.get("/invitations/{token}")
async def invitation_page(page: AnyPage, session: Session, token: str, accepted: str | None = None) -> Response:
    """The form an invitation link opens: name and password for a new account, a confirmation otherwise."""
    if accepted:
        return _private(render(page, "portal/invitations/accepted.html", nav=""))
    return await _form(page, session, token)


@router.post("/invitations/{token}")
async def accept_invitation(page: AnyPage, form: Form, session: Session, token: str) -> Response:
    """Accept the invitation; a new account is signed in at once, an existing one signs in with its password."""
    email = text(form, "email", max_length=320)
    name = text(form, "name", max_length=400).strip()
    password = text(form, "password", max_length=2048)
    try:
        invitation = await invitations.usable_invitation(session, token)
        if page.viewer is not None and page.viewer.user.email.lower() != invitation.email:
            raise InvalidInput(
                "you are signed in as another person: sign out first",
                issues=[FieldIssue("email", "you are signed in as another person: sign out first")],
            )
        account = await _account(session, invitation)
        needs_password = account is None or account.password_hash is None
        fields = _checked(token, email, password if needs_password else "", name)
        user, _ = await invitations.redeem_invitation(
            session,
            invitations.InvitationPolicy.from_settings(page.state.settings),
            token=fields.token,
            email=fields.email,
            password=fields.password,
            name=fields.name,
        )
    except InvalidInput as error:
        # Nothing of a refused redeem may stay: the unit of work commits only what a success wrote.
        await session.rollback()
        return await _form(page, session, token, status=422, errors=field_errors(error.issues), email=email, name=name)
    if page.viewer is not None:
        return _private(redirect(HOME))
    if not needs_password:
        # The link alone never signs anyone in to an account that has a password: that stays the way in.
        return _private(redirect(f"/invitations/{token}?accepted=1"))
    _key, session_token = await open_session(
        session, page.state.secret_key, user_id=user.id, lifetime=page.state.settings.portal_session_lifetime
    )
    response = _private(redirect(HOME))
    set_session_cookie(page, response, session_token)
    return response
