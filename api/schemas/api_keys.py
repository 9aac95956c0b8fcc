"""API key bodies: the secret appears in exactly one response, the one that creates the key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, WithJsonSchema

from tessera.rights.scopes import SCOPES
from tessera.schema_base import StrictModel


class ApiKeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(SCOPES)})]] = Field(
        default_factory=lambda: ["*"], min_length=1, description="e.g. tickets:read; * = all"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="Default: when the issuing key expires (never later); none if it never does."
    )
    organization_id: uuid.UUID | None = Field(
        default=None, description="Issue a service-account key of this organization (e.g. for an ERP)."
    )


class ApiKeyRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    user_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    secret: str = Field(description="The key itself: shown now and never again.")
