"""API keys: my personal keys, or the service-account keys of an organization I administer; the secret once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from api.deps import Session
from api.portal import once
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.pages.invitations import schema_refusal
from api.portal.render import redirect, render, with_query
from api.portal.routing import PortalRoute
from api.schemas.api_keys import ApiKeyCreate
from tessera import apikeys
from tessera.auth.keyring import as_ring
from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import ApiKey, ApiKeyKind, Organization, utcnow
from tessera.rights import scopes

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

PAGE = "/api-keys"
CREATED = "/api-keys/created"
NEW_KEY_COOKIE = "tessera_new_key"
PURPOSE = "new api key"
PAGE_SIZE = 50
SCOPE_CHOICES = sorted(scopes.SCOPES - {scopes.ALL})


# --- pages ---------------------------------------------------------------------------------------------------


async def _administered(page: Page, session: Session) -> list[Organization]:
    """Organizations whose service keys I may manage, for the switcher (the service still decides each time)."""
    assert page.viewer is not None
    ids = [org for org, role in page.viewer.principal.roles.items() if role == "admin"]
    if not ids:
        return []
    rows = await session.scalars(select(Organization).where(Organization.id.in_(ids)).order_by(Organization.name))
    return list(rows.all())


async def _keys_page(
    page: Page,
    session: Session,
    organization: uuid.UUID | None,
    cursor: str | None,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, object] | None = None,
) -> Response:
    assert page.viewer is not None
    principal = page.viewer.principal
    scopes.require_scope(principal, "api-keys:read")
    listed = await apikeys.list_api_keys(
        session, principal, organization_id=organization, limit=PAGE_SIZE, cursor=cursor
    )
    owner = await session.get(Organization, organization) if organization else None
    return render(
        page,
        "portal/api_keys/list.html",
        status=status,
        nav="api-keys",
        keys=listed.items,
        next_cursor=listed.next_cursor,
        organization=owner,
        administered=await _administered(page, session),
        scope_choices=SCOPE_CHOICES,
        errors=errors or {},
        values=values or {"name": "", "expires_on": "", "scopes": [scopes.ALL]},
        now=utcnow(),
        today=datetime.now(page.formats.zone).date(),
    )


@router.get(PAGE)
async def api_keys_page(
    page: SignedInPage, session: Session, organization: uuid.UUID | None = None, cursor: str | None = None
) -> Response:
    """My API keys, or the service-account keys of an organization I administer."""
    return await _keys_page(page, session, organization, cursor)


def _expiry(page: Page, expires_on: str) -> datetime | None:
    """The end of the chosen day, where the person is (a key "until 31 March" works all of that day)."""
    if not expires_on:
        return None
    try:
        day = date.fromisoformat(expires_on)
    except ValueError:
        raise InvalidInput(
            "the expiry is no date", issues=[FieldIssue("expires_on", "a date like 2027-03-31")]
        ) from None
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=page.formats.zone).astimezone(UTC)


@router.post(PAGE)
async def create_api_key(page: SignedInPage, form: Form, session: Session) -> Response:
    """Issue a key; the next page shows its secret, once."""
    assert page.viewer is not None
    organization_text = text(form, "organization", max_length=64)
    organization = _organization(organization_text)
    chosen = [value for value in form.getlist("scopes") if isinstance(value, str)][: len(scopes.SCOPES)]
    values: dict[str, object] = {
        "name": text(form, "name", max_length=400),
        "expires_on": text(form, "expires_on", max_length=40),
        "scopes": chosen,
    }
    try:
        scopes.require_scope(page.viewer.principal, "api-keys:write")
        body = _checked(str(values["name"]), chosen, _expiry(page, str(values["expires_on"])), organization)
        _key, secret = await apikeys.issue_api_key(
            session,
            page.state.secret_key,
            page.viewer.principal,
            name=body.name,
            requested_scopes=body.scopes,
            expires_at=body.expires_at,
            organization_id=body.organization_id,
        )
    except InvalidInput as error:
        await session.rollback()
        errors = {_field(issue.field): issue.message for issue in reversed(error.issues)}
        return await _keys_page(page, session, organization, None, status=422, errors=errors, values=values)
    # Shown once on the next page (api.portal.once): a reload neither makes a second key nor shows it again.
    response = redirect(with_query(CREATED, {"organization": organization_text if organization else ""}))
    once.carry(response, page, cookie=NEW_KEY_COOKIE, path=CREATED, purpose=PURPOSE, value=secret)
    return response


def _field(name: str) -> str:
    # The service names `expires_at` and `scopes.N`; the form's fields are `expires_on` and `scopes`.
    return {"expires_at": "expires_on", "organization_id": "organization"}.get(name, name.split(".", 1)[0])


def _organization(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("no such organization") from None


def _checked(name: str, chosen: list[str], expires_at: datetime | None, organization: uuid.UUID | None) -> ApiKeyCreate:
    """The fields as the API checks them, so the page refuses what the API refuses, in its words."""
    try:
        return ApiKeyCreate.model_validate(
            {"name": name, "scopes": chosen or [scopes.ALL], "expires_at": expires_at, "organization_id": organization}
        )
    except ValidationError as error:
        raise schema_refusal(error) from None


@router.get(CREATED)
async def created_api_key_page(page: SignedInPage, session: Session, organization: uuid.UUID | None = None) -> Response:
    """The new key with its secret, shown this once (the cookie that carried it is deleted)."""
    assert page.viewer is not None
    secret = once.unseal(page, PURPOSE, page.request.cookies.get(NEW_KEY_COOKIE))
    key = None
    if secret is not None:
        hashes = [apikeys.keyed_hash(s, secret) for s in as_ring(page.state.secret_key).secrets]
        key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash.in_(hashes), ApiKey.kind == ApiKeyKind.key))
    if key is None or key.created_by_user_id != page.viewer.user_id:
        return redirect(with_query(PAGE, {"organization": str(organization) if organization else ""}))
    response = render(page, "portal/api_keys/created.html", nav="api-keys", key=key, secret=secret)
    response.delete_cookie(NEW_KEY_COOKIE, path=CREATED)
    return response


@router.post("/api-keys/{api_key_id}/revoke")
async def revoke_api_key(page: SignedInPage, _form: Form, session: Session, api_key_id: uuid.UUID) -> Response:
    """Revoke a key at once (mine, or a service key of an organization I administer)."""
    assert page.viewer is not None
    scopes.require_scope(page.viewer.principal, "api-keys:write")
    key = await session.get(ApiKey, api_key_id)
    if key is None or key.kind != ApiKeyKind.key:
        raise NotFound(f"no API key {api_key_id}")
    await apikeys.revoke_api_key(session, page.viewer.principal, api_key_id)
    owner = key.organization_id if key.user_id is None else None
    return redirect(with_query(PAGE, {"organization": str(owner) if owner else ""}))
