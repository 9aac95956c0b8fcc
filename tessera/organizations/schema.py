"""Validated shapes of organizations and users, shared by the API bodies and the services."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from tessera.models import OrganizationKind, Role
from tessera.schema_base import LanguageTag, StrictModel
from tessera.timezones import check_timezone

# Deliberately simple: deliverability is the mail server's business; this catches typos and pasted junk.
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def _check_email(value: str) -> str:
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
    return value.lower()


Email = Annotated[str, AfterValidator(_check_email)]
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
    locale: LanguageTag = "en"
    organization_id: uuid.UUID | None = Field(
        default=None, description="Add the user to this organization (required unless you are a vendor admin)."
    )
    role: Role = Role.member
