"""My activations: of tickets I may activate and in my cloud containers, with Return where the service allows it
(see tessera.cloud.holders: from a cloud container I reach, or as an administrator of the ticket)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage
from api.portal.pages.my_tickets import release_writer
from api.portal.render import redirect, render, translate
from api.portal.routing import PortalRoute
from tessera.activation.errors import ActivationReturned
from tessera.cloud import holders
from tessera.db import unit_of_work
from tessera.errors import NotFound, TesseraError

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


async def _activations_page(
    page: Page, session: AsyncSession, *, status: int = 200, alert: str = "", flash: str = "", done: str = ""
) -> Response:
    assert page.viewer is not None
    rows = await holders.list_held(session, page.viewer.principal, certificate_ttl=page.state.settings.certificate_ttl)
    return render(
        page,
        "portal/activations/list.html",
        status=status,
        nav="tickets",
        rows=rows,
        alert=alert,
        flash=flash,
        done=done,
    )


@router.get("/activations")
async def my_activations(
    page: SignedInPage, session: Session, done: uuid.UUID | None = None, returned: uuid.UUID | None = None
) -> Response:
    """My activations."""
    flash = ""
    if done is not None:
        flash = translate(page, "Activated. Software with this container's credential file now gets the license.")
    elif returned is not None:
        flash = translate(page, "Returned. The ticket can be activated again.")
    return await _activations_page(page, session, flash=flash, done=str(done or returned or ""))


@router.post("/activations/{activation_id}/return")
async def return_activation(
    activation_id: uuid.UUID, request: Request, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Return an activation: its slot is free and the ticket can be activated elsewhere."""
    assert page.viewer is not None
    del form  # checked for its CSRF token; the activation is in the path
    await release_writer(session)
    client = request.client.host if request.client else "unknown"
    try:
        async with unit_of_work(page.state.session_factory) as work:
            await holders.return_held(
                work, request.app.state.activation, page.viewer.principal, activation_id, client=client
            )
    except NotFound:
        raise
    except ActivationReturned:
        pass  # a second click, or returned meanwhile: what was asked for is so
    except TesseraError as error:
        return await _activations_page(page, session, status=error.status, alert=error.detail)
    return redirect(f"/activations?returned={activation_id}")
