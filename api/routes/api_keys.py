"""API keys: issued with their secret once, revoked by their owner or an administrator of their organization."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import ApiKeysWriter, Session, State
from api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from tessera import apikeys

router = APIRouter(tags=["api keys"])


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
