"""Organization, membership and grant bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from tessera.models import OrganizationKind, Permission, Role
from tessera.organizations.schema import CountryCode, OrganizationSpec, TimeZone
from tessera.rights.quota import QUOTA_MAX
from tessera.schema_base import LanguageTag, StrictModel


class OrganizationCreate(OrganizationSpec):
    pass


class OrganizationRead(OrganizationSpec):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class OrganizationUpdate(StrictModel):
    """Only the keys sent change; `custom_fields` is replaced as a whole; a new `parent_id` moves the node."""

    kind: OrganizationKind | None = None
    parent_id: uuid.UUID | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    erp_customer_no: str | None = Field(default=None, min_length=1, max_length=64)
    country: CountryCode | None = None
    timezone: TimeZone | None = None
    locale: LanguageTag | None = None
    custom_fields: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class MembershipUpdate(StrictModel):
    role: Role


class MembershipRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    organization_id: uuid.UUID
    user_id: uuid.UUID
    role: Role


class MemberRead(StrictModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role


class GrantUpdate(StrictModel):
    """The whole grant: permissions on the product group, an optional quota of licenses, and delegability."""

    permissions: list[Permission] = Field(min_length=1)
    quota: int | None = Field(
        default=None, ge=0, le=QUOTA_MAX, description="Licenses that may be created; none = unlimited."
    )
    delegable: bool = False


class GrantRead(StrictModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    product_group: str
    permissions: list[Permission]
    quota: int | None
    quota_used: int
    quota_remaining: int | None = Field(description="Quota minus what was used and what was delegated onwards.")
    delegable: bool
    delegated_from: uuid.UUID | None = Field(description="The grant this one was delegated from, if any.")
    granted_by_user_id: uuid.UUID | None
    updated_at: datetime
