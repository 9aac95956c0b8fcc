"""Invitations: redeemed with the token from the link; no API key needed (the token is the credential)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from api.deps import AppState, Session, State
from api.openapi import problems
from api.schemas.auth import InvitationRedeem, InvitationRedeemed
from api.schemas.organizations import MembershipRead
from tessera.auth import invitations
from tessera.errors import TesseraError
from tessera.models import Membership

API_PATH = "/api/v1"

router = APIRouter(tags=["sign-in"])


@router.post(
    "/invitations/redeem",
    response_model=InvitationRedeemed,
    responses=problems(
        404,
        409,
        410,
        s404="No invitation with this token.",
        s409="The invitation was redeemed already.",
        s410="The invitation expired, or a newer one replaced it.",
    ),
)
async def redeem_invitation(body: InvitationRedeem, session: Session, state: State) -> InvitationRedeemed:
    """Accept an invitation: activate the account (setting its password if it has none) and the membership."""
    user, invitation = await invitations.redeem_invitation(
        session,
        invitations.InvitationPolicy.from_settings(state.settings),
        token=body.token,
        email=body.email,
        password=body.password,
        name=body.name,
    )
    membership = (
        await session.get(Membership, (user.id, invitation.organization_id)) if invitation.organization_id else None
    )
    return InvitationRedeemed(
        user_id=user.id,
        email=user.email,
        membership=MembershipRead.model_validate(membership, from_attributes=True) if membership else None,
    )


# --- the page the invitation link opens: a form for people, on the same service as the API ----------------

page_router = APIRouter(include_in_schema=False)

_PAGE = SandboxedEnvironment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Tessera invitation</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>Tessera invitation</h1>
{% if message %}<p role="alert">{{ message }}</p>{% endif %}
{% if show_form %}
<form method="post">
  <p><label>Your e-mail address<br><input name="email" type="email" required autocomplete="username"></label></p>
  <p><label>Your name (new accounts)<br><input name="name" autocomplete="name"></label></p>
  <p><label>New password, at least {{ min_length }} characters (leave empty if you already have an account)<br>
     <input name="password" type="password" minlength="{{ min_length }}" autocomplete="new-password"></label></p>
  <p><button>Accept the invitation</button></p>
</form>
{% endif %}
{% if done %}
<p>Sign in with <code>POST {{ api }}/auth/keys</code> (e-mail and password) for your API key.</p>
{% endif %}
</body></html>
"""
)


def _page(
    state: AppState, status: int, *, message: str = "", show_form: bool = False, done: bool = False
) -> HTMLResponse:
    html = _PAGE.render(
        message=message,
        show_form=show_form,
        done=done,
        min_length=state.settings.password_min_length,
        api=API_PATH,
    )
    # The address carries a credential: keep the page out of caches and referrers.
    return HTMLResponse(
        html, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


@page_router.get("/invitations/{token}", response_class=HTMLResponse)
async def invitation_page(token: str, session: Session, state: State) -> HTMLResponse:
    """The form an invitation link opens."""
    try:
        await invitations.usable_invitation(session, token)
    except TesseraError as error:
        return _page(state, error.status, message=error.detail)
    return _page(state, 200, show_form=True)


@page_router.post("/invitations/{token}", response_class=HTMLResponse)
async def submit_invitation_page(token: str, request: Request, session: Session, state: State) -> HTMLResponse:
    """Redeem an invitation from its form."""
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode(errors="replace")).items()}
    try:
        fields = InvitationRedeem.model_validate(
            {"token": token, "email": form.get("email", ""), "password": form.get("password") or None}
            | ({"name": form["name"]} if form.get("name") else {})
        )
        await invitations.redeem_invitation(
            session,
            invitations.InvitationPolicy.from_settings(state.settings),
            token=fields.token,
            email=fields.email,
            password=fields.password,
            name=fields.name,
        )
    except ValidationError as error:
        await session.rollback()
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        return _page(state, 422, message=f"{field}: {problem['msg'].removeprefix('Value error, ')}", show_form=True)
    except TesseraError as error:
        # Nothing of a refused redeem may stay: the unit of work commits only what a success wrote.
        await session.rollback()
        issue = f" ({error.issues[0].field}: {error.issues[0].message})" if error.issues else ""
        return _page(state, error.status, message=error.detail + issue, show_form=error.status == 422)
    return _page(state, 200, message="Welcome: your invitation is accepted.", done=True)
