"""Offline activation: a device's request file uploaded from a connected machine, its update file downloaded
(the same service as `POST /activations/offline`: the same file again gives the same answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage, upload
from api.portal.pages.my_tickets import release_writer
from api.portal.render import field_errors, render
from api.portal.routing import PortalRoute
from api.routes.activations import signal_first_activation
from tessera.activation import offline
from tessera.activation.errors import OfflineRequestTooLarge
from tessera.errors import TesseraError

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
FIELD = "request"


def _offline_page(page: Page, *, status: int = 200, errors: dict[str, str] | None = None) -> Response:
    return render(
        page,
        "portal/offline/upload.html",
        status=status,
        nav="tickets",
        errors=errors or {},
        max_kib=offline.MAX_REQUEST_BYTES // 1024,
    )


@router.get("/offline")
async def offline_activation(page: SignedInPage) -> Response:
    """Offline activation: upload a request file."""
    return _offline_page(page)


@router.post("/offline")
async def upload_request_file(request: Request, page: SignedInPage, form: Form, session: Session) -> Response:
    """Answer an uploaded request file with its update file, as a download."""
    await release_writer(session)
    client = request.client.host if request.client else "unknown"
    try:
        raw = await upload(form, FIELD)
        if len(raw) > offline.MAX_REQUEST_BYTES:
            raise OfflineRequestTooLarge(offline.MAX_REQUEST_BYTES)
        parsed = offline.parse_request(raw)
        answered = await offline.answer_committed(
            page.state.session_factory, request.app.state.activation, parsed, client=client
        )
    except TesseraError as error:
        # Schema problems name fields of the file (`container.kind`); on this page they belong to the upload.
        messages = field_errors(error.issues)
        detail = error.detail
        if messages and FIELD not in messages:
            detail = "; ".join(f"{name}: {message}" for name, message in messages.items())
        return _offline_page(page, status=error.status, errors={FIELD: messages.get(FIELD) or detail})
    if answered.pending_subscription_id is not None:
        await signal_first_activation(page.state, answered.pending_subscription_id, answered.activated_at)
    return Response(
        answered.update.model_dump_json(indent=2) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="tessera-update.json"',
            "Cache-Control": "no-store",
        },
    )
