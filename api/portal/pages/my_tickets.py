"""My tickets: what I may activate (as `GET /tickets?mine=true`), activated into my cloud container with one button,
or by typing a code handed over on paper. Neither the code nor the container's credential passes the browser."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import AppState, Session
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.render import field_errors, redirect, render, with_query
from api.portal.routing import PortalRoute
from api.routes.activations import signal_first_activation
from api.routes.cloud_containers import api_base_url
from tessera.activation.service import Activated
from tessera.cloud import holders
from tessera.db import unit_of_work
from tessera.errors import NotFound, TesseraError
from tessera.licenses import tickets
from tessera.models import License, Product, TicketStatus
from tessera.principal import Principal

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
PER_PAGE = 50


@dataclass(frozen=True)
class TicketRow:
    id: uuid.UUID
    product_name: dict[str, str]
    product_code: str
    status: str
    expires_at: datetime | None
    cloud: bool
    """The product may live in a cloud container (else it is activated on a device, with its code)."""
    in_my_container: bool

    @property
    def activatable(self) -> bool:
        live = self.status in (TicketStatus.available, TicketStatus.returned, TicketStatus.activated)
        return self.cloud and live and not self.in_my_container


async def _rows(session: AsyncSession, principal: Principal, cursor: str | None) -> tuple[list[TicketRow], str | None]:
    page = await tickets.list_tickets(session, principal, limit=PER_PAGE, cursor=cursor, mine=True)
    license_ids = [ticket.license_id for ticket in page.items]
    found = (
        await session.execute(
            select(License, Product).join(Product, Product.id == License.product_id).where(License.id.in_(license_ids))
        )
    ).all()
    by_license = {license.id: (license, product) for license, product in found}
    placed = await holders.in_own_containers(session, principal, [ticket.id for ticket in page.items])
    rows = []
    for ticket in page.items:
        license, product = by_license[ticket.license_id]
        rows.append(
            TicketRow(
                id=ticket.id,
                product_name=dict(product.name),
                product_code=product.code,
                status=ticket.status,
                expires_at=license.expires_at,
                cloud="cloud" in [str(kind) for kind in product.container_kinds],
                in_my_container=ticket.id in placed,
            )
        )
    return rows, page.next_cursor


async def _tickets_page(
    page: Page,
    session: AsyncSession,
    *,
    cursor: str | None = None,
    status: int = 200,
    alert: str = "",
    errors: dict[str, str] | None = None,
) -> Response:
    assert page.viewer is not None
    rows, next_cursor = await _rows(session, page.viewer.principal, cursor)
    return render(
        page,
        "portal/tickets/list.html",
        status=status,
        nav="tickets",
        rows=rows,
        next_url=with_query("/tickets", {"cursor": next_cursor}) if next_cursor else "",
        alert=alert,
        errors=errors or {},
    )


async def release_writer(session: AsyncSession) -> None:
    """Commit what resolving the viewer wrote (the session's last use) before the activation service's own units
    of work and signing-key transactions write: SQLite has one writer, and this session would hold it meanwhile."""
    await session.commit()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _signal(state: AppState, done: Activated) -> None:
    if done.pending_subscription_id is not None:
        await signal_first_activation(state, done.pending_subscription_id, done.activated_at)


@router.get("/tickets")
async def my_tickets(page: SignedInPage, session: Session, cursor: str | None = None) -> Response:
    """My tickets: the ones I may activate."""
    return await _tickets_page(page, session, cursor=cursor)


@router.post("/tickets/{ticket_id}/activate")
async def activate_ticket(
    ticket_id: uuid.UUID, request: Request, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Activate one of my tickets into my cloud container (created at the first use)."""
    assert page.viewer is not None
    del form  # checked for its CSRF token; the ticket is in the path
    await release_writer(session)
    state = page.state
    try:
        async with unit_of_work(state.session_factory) as work:
            done = await holders.activate_held(
                work,
                request.app.state.activation,
                page.viewer.principal,
                ticket_id,
                client=_client(request),
                api_base_url=api_base_url(state.settings),
            )
    except NotFound:
        raise
    except TesseraError as error:
        return await _tickets_page(page, session, status=error.status, alert=error.detail)
    await _signal(state, done)
    return redirect(f"/activations?done={done.activation_id}")


@router.post("/tickets/activate-code")
async def activate_code(request: Request, page: SignedInPage, form: Form, session: Session) -> Response:
    """Activate a ticket by its typed code into my cloud container."""
    assert page.viewer is not None
    await release_writer(session)
    state = page.state
    code = text(form, "code", max_length=200).strip()
    if not code:
        return await _tickets_page(page, session, status=422, errors={"code": "type the ticket code"})
    try:
        async with unit_of_work(state.session_factory) as work:
            done = await holders.activate_code(
                work,
                request.app.state.activation,
                page.viewer.principal,
                code,
                client=_client(request),
                api_base_url=api_base_url(state.settings),
            )
    except TesseraError as error:
        errors = field_errors(error.issues) or {"code": error.detail}
        if "code" not in errors:
            errors = {"code": error.detail}
        # The code is not put back into the field: it is a secret, and the page is not the place to keep it.
        return await _tickets_page(page, session, status=error.status, errors=errors)
    await _signal(state, done)
    return redirect(f"/activations?done={done.activation_id}")
