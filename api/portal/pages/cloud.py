"""My cloud containers (what `GET /cloud-containers` lists for me): devices of the limit, the licenses in each, and
the credential file, issued anew on download (the credential is stored only as a hash, so it cannot be shown again)."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, SignedInPage
from api.portal.render import render, with_query
from api.portal.routing import PortalRoute
from api.routes.cloud_containers import api_base_url
from tessera.cloud import containers, devices, holders

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
PER_PAGE = 50


@router.get("/cloud-containers")
async def my_cloud_containers(page: SignedInPage, session: Session, cursor: str | None = None) -> Response:
    """My cloud containers."""
    assert page.viewer is not None
    found = await containers.list_containers(session, page.viewer.principal, limit=PER_PAGE, cursor=cursor)
    seated = {container.id: await devices.list_devices(session, container.id) for container in found.items}
    licenses = await holders.active_in_containers(session, found.items)
    return render(
        page,
        "portal/cloud/list.html",
        nav="tickets",
        containers=found.items,
        seated=seated,
        licenses=licenses,
        device_limit=page.state.settings.cloud_device_limit,
        next_url=with_query("/cloud-containers", {"cursor": found.next_cursor}) if found.next_cursor else "",
    )


@router.post("/cloud-containers/{container_id}/credentials")
async def download_credential_file(
    container_id: uuid.UUID, page: SignedInPage, form: Form, session: Session
) -> Response:
    """Download the container's credential file: a new credential, the previous one stops working at once."""
    assert page.viewer is not None
    del form  # checked for its CSRF token; the container is in the path
    _container, file = await containers.rotate_credential(
        session,
        page.viewer.principal,
        page.state.secret_key,
        container_id,
        api_base_url=api_base_url(page.state.settings),
    )
    body = {
        "cloud_container_id": str(file.cloud_container_id),
        "credential": file.credential,
        "api_base_url": file.api_base_url,
    }
    # Committed before the file leaves: a download whose rotation did not stand would hold a dead credential.
    await session.commit()
    return Response(
        json.dumps(body, indent=2) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="tessera-cloud-container-{file.cloud_container_id}.json"',
            "Cache-Control": "no-store",
        },
    )
