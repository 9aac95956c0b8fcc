"""Validated shapes of organizations and users, shared by the API bodies and the services."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from tessera.auth.emails import normalize_email
from tessera.models import OrganizationKind, Role
from tessera.schema_base import LanguageTag, StrictModel
from tessera.timezones import check_timezone

Email = Annotated[str, AfterValidator(normalize_email)]
"""An address in its canonical form (tessera.auth.emails); deliverability is the mail server's business."""
TimeZone = Annotated[str, AfterValidator(check_timezone)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE.")]


class OrganizationSpec(StrictModel):
    kind: OrganizationKind
    parent_id: uuid.UUID | None = Field(default=None, description="Required for every kind but the vendor.")
    name: str = Field(min_length=1, max_length=200)
    erp_customer_no: str | None = Field(default=None, min_length=1, max_length=64)
    country: CountryCode | None = None
    timezone: TimeZone = "UTC"
    locale: LanguageTag = "en"
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, description="Values for the `customer_fields` declared in catalog.yaml."
    )


class UserSpec(StrictModel):
    email: Email
    name: str = Field(min_length=1, max_length=200)
    locale: LanguageTag | None = Field(
        default=None, description="The language of the person's messages; default: the organization's, else en."
    )
    organization_id: uuid.UUID | None = Field(
        default=None, description="Add the user to this organization (required unless you are a vendor admin)."
    )
    role: Role = Role.member
