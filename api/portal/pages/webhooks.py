"""Webhooks: the endpoints of the organizations I administer, their deliveries, and what the API lets me change.

The services are the API's (`tessera.webhooks`, with the URL rules of the settings), so an endpoint out of reach is
a 404 and a URL the API refuses (SSRF rules) is refused here with the same message, next to the field.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import Session, State
from api.portal import once
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from api.routes.webhooks import redeliver, url_rules
from tessera.errors import FieldIssue, InvalidInput
from tessera.models import Event, Organization, Role
from tessera.pagination import DEFAULT_LIMIT
from tessera.webhooks import deliveries, endpoints
from tessera.webhooks.event_types import EVENT_TYPES, known_event_types
from tessera.webhooks.status import EndpointStatus

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
SECRET_PAGE = "/webhooks/secret"
SECRET_COOKIE = "tessera_new_webhook_secret"
PURPOSE = "new webhook secret"
MAX_URL = 2048
MAX_DESCRIPTION = 500


def _administered(page: Page) -> list[tuple[uuid.UUID, str]]:
    """Organizations the viewer administers directly: where a new endpoint can be registered."""
    assert page.viewer is not None
    roles = page.viewer.principal.roles
    return [(org.id, org.name) for org in page.viewer.organizations if roles.get(org.id) == Role.admin]


async def _organization_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids)))
    return {row[0]: row[1] for row in rows.all()}


async def _list_page(
    page: Page,
    session: AsyncSession,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    secret: str = "",
    secret_for: uuid.UUID | None = None,
    cursor: str | None = None,
    flash: str = "",
) -> Response:
    assert page.viewer is not None
    listed = await endpoints.list_endpoints(session, page.viewer.principal, limit=DEFAULT_LIMIT, cursor=cursor)
    organizations = _administered(page)
    return render(
        page,
        "portal/webhooks/list.html",
        status=status,
        nav="webhooks",
        endpoints=listed.items,
        next_cursor=listed.next_cursor,
        names=await _organization_names(session, {e.organization_id for e in listed.items}),
        organizations=organizations,
        event_types=[(name, EVENT_TYPES[name].description) for name in known_event_types()],
        errors=errors or {},
        values=values or {"organization_id": "", "url": "", "event_types": [], "description": ""},
        secret=secret,
        secret_for=secret_for,
        flash=flash,
    )


@router.get("/webhooks")
async def list_webhooks(page: SignedInPage, session: Session, cursor: str | None = None) -> Response:
    """The webhook endpoints of the organizations I administer."""
    return await _list_page(page, session, cursor=cursor)


def _show_secret_once(page: Page, endpoint_id: uuid.UUID, secret: str, what: str) -> Response:
    """Redirect to the page that shows the new secret once (api.portal.once): a reload repeats nothing."""
    response = redirect(SECRET_PAGE)
    once.carry(
        response, page, cookie=SECRET_COOKIE, path=SECRET_PAGE, purpose=PURPOSE, value=f"{endpoint_id} {what} {secret}"
    )
    return response


@router.get(SECRET_PAGE)
async def new_webhook_secret(page: SignedInPage, session: Session) -> Response:
    """The signing secret just made (a new endpoint's, or a rotation's), shown this once."""
    carried = once.unseal(page, PURPOSE, page.request.cookies.get(SECRET_COOKIE))
    if carried is None:
        return redirect("/webhooks")
    endpoint_text, what, secret = carried.split(" ", 2)
    flash = (
        translate(page, "The endpoint is added.")
        if what == "added"
        else translate(page, "The endpoint has a new signing secret.")
    )
    response = await _list_page(page, session, secret=secret, secret_for=uuid.UUID(endpoint_text), flash=flash)
    response.delete_cookie(SECRET_COOKIE, path=SECRET_PAGE)
    return response


def _issues_by_field(issues: list[FieldIssue]) -> dict[str, str]:
    """`event_types.1` is the list's field on the form: one message for the whole group of checkboxes."""
    return field_errors([FieldIssue(issue.field.split(".", 1)[0], issue.message) for issue in issues])


@router.post("/webhooks")
async def add_webhook(page: SignedInPage, form: Form, session: Session, state: State) -> Response:
    """Register an endpoint; its signing secret is shown on the next page, once."""
    assert page.viewer is not None
    values: dict[str, Any] = {"organization_id": "", "url": "", "event_types": [], "description": ""}
    try:
        values = {
            "organization_id": text(form, "organization_id", max_length=64),
            "url": text(form, "url", max_length=MAX_URL).strip(),
            "event_types": [str(value)[:120] for value in form.getlist("event_types")[:50]],
            "description": text(form, "description", max_length=MAX_DESCRIPTION).strip(),
        }
        try:
            organization_id = uuid.UUID(values["organization_id"])
        except ValueError:
            raise InvalidInput(
                "choose an organization", issues=[FieldIssue("organization_id", "choose an organization")]
            ) from None
        if not values["event_types"]:
            issue = FieldIssue("event_types", "choose at least one event type")
            raise InvalidInput("event_types: choose at least one", issues=[issue])
        if not values["url"]:
            raise InvalidInput("url: give a URL", issues=[FieldIssue("url", "give the endpoint's https:// URL")])
        endpoint, secret = await endpoints.create_endpoint(
            session,
            page.viewer.principal,
            state.secret_key,
            url_rules(state.settings),
            organization_id=organization_id,
            url=values["url"],
            event_types=values["event_types"],
            description=values["description"],
        )
    except InvalidInput as error:
        await session.rollback()
        errors = _issues_by_field(list(error.issues)) or {"url": error.detail}
        return await _list_page(page, session, status=422, errors=errors, values=values)
    return _show_secret_once(page, endpoint.id, secret, "added")


async def _endpoint_page(
    page: Page,
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    flash: str = "",
    alert: str = "",
    status: int = 200,
    cursor: str | None = None,
) -> Response:
    assert page.viewer is not None
    principal = page.viewer.principal
    endpoint = await endpoints.get_endpoint(session, principal, endpoint_id)
    listed = await deliveries.list_deliveries(session, principal, endpoint_id, limit=DEFAULT_LIMIT, cursor=cursor)
    event_ids = {delivery.event_id for delivery in listed.items}
    events = await session.execute(select(Event.id, Event.name).where(Event.id.in_(event_ids)))
    return render(
        page,
        "portal/webhooks/detail.html",
        status=status,
        nav="webhooks",
        endpoint=endpoint,
        organization=(await _organization_names(session, {endpoint.organization_id})).get(endpoint.organization_id),
        deliveries=listed.items,
        next_cursor=listed.next_cursor,
        event_names={row[0]: row[1] for row in events.all()},
        flash=flash,
        alert=alert,
    )


@router.get("/webhooks/{endpoint_id}")
async def show_webhook(
    page: SignedInPage, session: Session, endpoint_id: uuid.UUID, done: str | None = None, cursor: str | None = None
) -> Response:
    """An endpoint and its deliveries, newest first."""
    flash = translate(page, "Sent again: a new delivery is on its way.") if done == "redelivered" else ""
    return await _endpoint_page(page, session, endpoint_id, flash=flash, cursor=cursor)


@router.post("/webhooks/{endpoint_id}/status")
async def set_webhook_status(
    page: SignedInPage, form: Form, session: Session, state: State, endpoint_id: uuid.UUID
) -> Response:
    """Disable or enable an endpoint (enabling forgets its failures)."""
    assert page.viewer is not None
    try:
        status = EndpointStatus(text(form, "status", max_length=16))
    except ValueError:
        raise InvalidInput(
            "status: enabled or disabled", issues=[FieldIssue("status", "enabled or disabled")]
        ) from None
    await endpoints.update_endpoint(
        session, page.viewer.principal, url_rules(state.settings), endpoint_id, status=status
    )
    return redirect("/webhooks")


@router.post("/webhooks/{endpoint_id}/secret")
async def rotate_webhook_secret(
    page: SignedInPage, form: Form, session: Session, state: State, endpoint_id: uuid.UUID
) -> Response:
    """A new signing secret, shown once; the old one keeps signing for the configured overlap."""
    del form  # checked for its CSRF token; nothing else is asked
    assert page.viewer is not None
    endpoint, secret = await endpoints.rotate_secret(
        session,
        page.viewer.principal,
        state.secret_key,
        endpoint_id,
        overlap=state.settings.webhook_secret_overlap,
    )
    return _show_secret_once(page, endpoint.id, secret, "rotated")


@router.post("/webhooks/{endpoint_id}/redeliver")
async def redeliver_webhook(
    page: SignedInPage, form: Form, session: Session, state: State, endpoint_id: uuid.UUID
) -> Response:
    """Send one of the endpoint's events again (a new delivery round)."""
    assert page.viewer is not None
    try:
        event_id = uuid.UUID(text(form, "event_id", max_length=64))
    except ValueError:
        raise InvalidInput("event_id: no such event", issues=[FieldIssue("event_id", "no such event")]) from None
    await endpoints.get_endpoint(session, page.viewer.principal, endpoint_id)
    try:
        await redeliver(session, state, page.viewer.principal, event_id, endpoint_id)
    except InvalidInput as error:  # e.g. the endpoint is disabled, or no longer takes this event type
        await session.rollback()
        return await _endpoint_page(page, session, endpoint_id, alert=error.detail, status=422)
    return redirect(f"/webhooks/{endpoint_id}?done=redelivered")
