"""Cloud containers: created for a person or an organization, reached by the vendor's software with a credential."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from api.deps import Cursor, Limit, Session, State, scoped
from api.openapi import problems
from api.routes.activations import Runtime
from api.schemas.cloud_containers import (
    CloudAccessCreate,
    CloudAccessRead,
    CloudContainerCreate,
    CloudContainerCreated,
    CloudContainerRead,
    CloudDeviceRead,
    CredentialFileRead,
)
from api.schemas.common import Page
from tessera.cloud import access, containers, devices
from tessera.cloud.containers import CredentialFile
from tessera.cloud.models import CloudContainer
from tessera.principal import Principal
from tessera.settings import Settings

router = APIRouter(tags=["cloud containers"])

# Cloud containers are where activations live, so the activation scopes cover them.
ContainersReader = Annotated[Principal, Depends(scoped("activations:read"))]
ContainersWriter = Annotated[Principal, Depends(scoped("activations:write"))]


def api_base_url(settings: Settings) -> str:
    return f"{settings.portal_url.rstrip('/')}/api/v1"


def _read(container: CloudContainer, settings: Settings, found: list[CloudDeviceRead]) -> CloudContainerRead:
    return CloudContainerRead(
        id=container.id,
        name=container.name,
        organization_id=container.organization_id,
        user_id=container.user_id,
        credential_generation=container.credential_generation,
        credential_rotated_at=container.credential_rotated_at,
        device_limit=settings.cloud_device_limit,
        devices=found,
        created_at=container.created_at,
    )


async def _with_devices(session: Session, container: CloudContainer, settings: Settings) -> CloudContainerRead:
    found = await devices.list_devices(session, container.id)
    return _read(container, settings, [CloudDeviceRead.model_validate(d, from_attributes=True) for d in found])


def _created(read: CloudContainerRead, file: CredentialFile) -> CloudContainerCreated:
    credential_file = CredentialFileRead(
        cloud_container_id=file.cloud_container_id, credential=file.credential, api_base_url=file.api_base_url
    )
    return CloudContainerCreated(**read.model_dump(), credential_file=credential_file)


@router.get("/cloud-containers", response_model=Page[CloudContainerRead])
async def list_cloud_containers(
    session: Session,
    state: State,
    caller: ContainersReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    organization_id: Annotated[uuid.UUID | None, Query(description="Only the containers of this organization.")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Only this person's containers.")] = None,
) -> Page[CloudContainerRead]:
    """List the caller's own containers and those of the organizations (and members) it administers, newest first."""
    page = await containers.list_containers(
        session, caller, limit=limit, cursor=cursor, organization_id=organization_id, user_id=user_id
    )
    return Page(items=[_read(c, state.settings, []) for c in page.items], next_cursor=page.next_cursor)


@router.post(
    "/cloud-containers",
    response_model=CloudContainerCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(403),
)
async def create_cloud_container(
    body: CloudContainerCreate, session: Session, state: State, caller: ContainersWriter
) -> CloudContainerCreated:
    """Create a cloud container (one's own, a member's, or an organization's); its credential file is shown once."""
    container, file = await containers.create_container(
        session,
        caller,
        state.secret_key,
        api_base_url=api_base_url(state.settings),
        name=body.name,
        organization_id=body.organization_id,
        user_id=body.user_id,
        for_organization=body.for_organization,
    )
    return _created(_read(container, state.settings, []), file)


@router.get("/cloud-containers/{container_id}", response_model=CloudContainerRead)
async def get_cloud_container(
    container_id: uuid.UUID, session: Session, state: State, caller: ContainersReader
) -> CloudContainerRead:
    """Show one container and the devices using it (never its credential)."""
    container = await containers.get_container(session, caller, container_id)
    return await _with_devices(session, container, state.settings)


@router.delete("/cloud-containers/{container_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_cloud_container(container_id: uuid.UUID, session: Session, caller: ContainersWriter) -> None:
    """Delete a container: its credential stops working, its activations are returned (tickets free to move)."""
    await access.delete_with_activations(session, caller, container_id)


@router.post("/cloud-containers/{container_id}/credentials", response_model=CloudContainerCreated)
async def rotate_cloud_credential(
    container_id: uuid.UUID, session: Session, state: State, caller: ContainersWriter
) -> CloudContainerCreated:
    """Issue a new credential file (shown once); the previous credential stops working at once."""
    container, file = await containers.rotate_credential(
        session, caller, state.secret_key, container_id, api_base_url=api_base_url(state.settings)
    )
    return _created(await _with_devices(session, container, state.settings), file)


@router.delete("/cloud-containers/{container_id}/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def release_cloud_device(
    container_id: uuid.UUID, device_id: str, session: Session, caller: ContainersWriter
) -> None:
    """Release a device's seat (owner or administrator): another device may then use the container."""
    container = await containers.get_container(session, caller, container_id, lock=True)
    await devices.release_device(session, container, device_id)


@router.post(
    "/cloud-containers/{container_id}/access",
    response_model=CloudAccessRead,
    responses=problems(401, 409, 429, s409="The container is already used from as many devices as it may be."),
)
async def access_cloud_container(
    container_id: uuid.UUID,
    body: CloudAccessCreate,
    request: Request,
    session: Session,
    state: State,
    runtime: Runtime,
) -> CloudAccessRead:
    """From a device, with the credential file: short-lived certificates of every license in the container."""
    client = request.client.host if request.client else "unknown"
    granted = await access.access_container(
        session,
        runtime,
        container_id,
        body.credential,
        body.device_id,
        settings=state.settings,
        client=client,
    )
    await session.commit()
    return CloudAccessRead.model_validate(granted, from_attributes=True)
