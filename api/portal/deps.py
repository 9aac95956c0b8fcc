"""What every page needs: who is looking (from the session cookie), in which language, and a checked form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile

from api.deps import AppState, Session, State
from api.portal import csrf, i18n
from tessera.apikeys import authenticate
from tessera.errors import FieldIssue, InvalidInput, NotAuthenticated
from tessera.models import ApiKeyKind, Membership, Organization, User
from tessera.principal import Principal

MAX_FORM_FIELDS = 500
MAX_UPLOAD_BYTES = 256 * 1024


class SignInRequired(NotAuthenticated):
    """Raised by pages that need a signed-in person; the portal answers with a redirect to the sign-in page."""


@dataclass(frozen=True)
class Person:
    """The account, copied out of the ORM so a page can still show it after its unit of work rolled back."""

    id: uuid.UUID
    email: str
    name: str
    locale: str


@dataclass(frozen=True)
class OrganizationRef:
    id: uuid.UUID
    name: str
    kind: str
    locale: str
    timezone: str


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: the principal the API would see for them, and their account."""

    principal: Principal
    user: Person
    session_token: str
    organizations: list[OrganizationRef] = field(default_factory=list)
    """The organizations the person belongs to directly, by name."""

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    def is_admin(self) -> bool:
        return bool(self.principal.admin_of) or self.principal.vendor_admin


@dataclass
class Page:
    """The request as the templates see it."""

    request: Request
    state: AppState
    viewer: Viewer | None
    locale: str
    formats: i18n.Formats
    csrf_binding: str
    new_csrf_cookie: bool

    @property
    def csrf_token(self) -> str:
        return csrf.token_for(self.state.secret_key, self.csrf_binding)


async def find_viewer(request: Request, state: AppState, session: AsyncSession) -> Viewer | None:
    token = request.cookies.get(csrf.SESSION_COOKIE)
    if not token:
        return None
    try:
        principal = await authenticate(session, state.secret_key, token, kind=ApiKeyKind.session)
    except NotAuthenticated:
        return None
    if principal.user_id is None:
        return None
    user = await session.get(User, principal.user_id)
    if user is None:
        return None
    rows = await session.scalars(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.name, Organization.id)
    )
    organizations = [
        OrganizationRef(id=org.id, name=org.name, kind=org.kind, locale=org.locale, timezone=org.timezone)
        for org in rows.all()
    ]
    person = Person(id=user.id, email=user.email, name=user.name, locale=user.locale)
    return Viewer(principal=principal, user=person, session_token=token, organizations=organizations)


async def build_page(request: Request, state: AppState, viewer: Viewer | None) -> Page:
    first = viewer.organizations[0] if viewer and viewer.organizations else None
    if viewer is not None:
        locale = i18n.choose(viewer.user.locale, first.locale if first else None)
    else:
        locale = i18n.choose(i18n.from_accept_language(request.headers.get("accept-language")))
    timezone = first.timezone if first else "UTC"
    binding = viewer.session_token if viewer else request.cookies.get(csrf.ANONYMOUS_COOKIE)
    new_cookie = binding is None
    return Page(
        request=request,
        state=state,
        viewer=viewer,
        locale=locale,
        formats=i18n.Formats(locale, timezone),
        csrf_binding=binding or csrf.new_binding(),
        new_csrf_cookie=new_cookie,
    )


async def any_page(request: Request, state: State, session: Session) -> Page:
    request.state.portal_session = session  # the error page reads the viewer in it (api.portal.routing)
    return await build_page(request, state, await find_viewer(request, state, session))


async def signed_in_page(page: Annotated[Page, Depends(any_page)]) -> Page:
    if page.viewer is None:
        raise SignInRequired("sign in to see this page")
    return page


AnyPage = Annotated[Page, Depends(any_page)]
SignedInPage = Annotated[Page, Depends(signed_in_page)]


async def checked_form(request: Request, page: AnyPage) -> FormData:
    """The submitted form, refused (403) unless it carries this browser's CSRF token."""
    try:
        form = await request.form(max_files=4, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_UPLOAD_BYTES)
    except Exception as error:  # the multipart parser raises its own types for malformed bodies
        raise InvalidInput(f"the form could not be read: {error}") from error
    submitted = form.get(csrf.FIELD)
    binding = page.viewer.session_token if page.viewer else request.cookies.get(csrf.ANONYMOUS_COOKIE)
    csrf.check(page.state.secret_key, binding, submitted if isinstance(submitted, str) else None)
    return form


Form = Annotated[FormData, Depends(checked_form)]


def text(form: FormData, name: str, *, max_length: int = 2000) -> str:
    """A text field of a form ('' when absent), refused when it is a file or longer than `max_length`."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", issues=[FieldIssue(name, "must be text, not a file")])
    if len(value) > max_length:
        raise InvalidInput(f"{name} is too long", issues=[FieldIssue(name, f"at most {max_length} characters")])
    return value


async def upload(form: FormData, name: str) -> bytes:
    """An uploaded file's bytes, refused when missing or larger than MAX_UPLOAD_BYTES."""
    value = form.get(name)
    if not isinstance(value, UploadFile):
        raise InvalidInput(f"choose a file for {name}", issues=[FieldIssue(name, "choose a file")])
    data = await value.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"{name} is too large", issues=[FieldIssue(name, f"at most {MAX_UPLOAD_BYTES // 1024} KiB")])
    return data
