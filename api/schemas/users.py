"""User bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import ConfigDict

from api.schemas.organizations import MembershipRead
from tessera.organizations.schema import UserSpec
from tessera.schema_base import StrictModel


class UserCreate(UserSpec):
    pass


class UserRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str
    name: str
    locale: str
    created_at: datetime


class MeRead(StrictModel):
    """The caller: its user (none for a service account), the key's scopes and the memberships behind it."""

    user: UserRead | None
    api_key_id: uuid.UUID
    service_organization_id: uuid.UUID | None
    scopes: list[str]
    vendor_admin: bool
    memberships: list[MembershipRead]
