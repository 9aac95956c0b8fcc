"""API keys: issued with their secret once, revoked by their owner or an administrator of their organization."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import ApiKeysReader, ApiKeysWriter, Cursor, Limit, Session, State
from api.openapi import problems
from api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from api.schemas.common import Page
from tessera import apikeys

router = APIRouter(tags=["api keys"])


@router.get(
    "/api-keys",
    response_model=Page[ApiKeyRead],
    responses=problems(404, s404="The `organization_id` names no organization the caller administers."),
)
async def list_api_keys(
    session: Session,
    caller: ApiKeysReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="The service-account keys of this administered organization.")
    ] = None,
) -> Page[ApiKeyRead]:
    """List the caller's own keys, or an administered organization's service keys; never secrets or hashes."""
    page = await apikeys.list_api_keys(session, caller, organization_id=organization_id, limit=limit, cursor=cursor)
    return Page(
        items=[ApiKeyRead.model_validate(k, from_attributes=True) for k in page.items], next_cursor=page.next_cursor
    )


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(body: ApiKeyCreate, session: Session, state: State, caller: ApiKeysWriter) -> ApiKeyCreated:
    """Issue a key for the caller or for an administered organization's service account; the secret is shown once."""
    key, secret = await apikeys.issue_api_key(
        session,
        state.secret_key,
        caller,
        name=body.name,
        requested_scopes=body.scopes,
        expires_at=body.expires_at,
        organization_id=body.organization_id,
    )
    read = ApiKeyRead.model_validate(key, from_attributes=True)
    return ApiKeyCreated(**read.model_dump(), secret=secret)


@router.delete("/api-keys/{api_key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_api_key(api_key_id: uuid.UUID, session: Session, caller: ApiKeysWriter) -> None:
    """Revoke a key at once."""
    await apikeys.revoke_api_key(session, caller, api_key_id)
