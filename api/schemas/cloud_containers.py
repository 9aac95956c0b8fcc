"""Cloud container bodies; a credential appears only in the credential file of the answer that makes it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field

from tessera.cloud.credentials import MAX_CREDENTIAL_LENGTH
from tessera.cloud.devices import MAX_DEVICE_ID_LENGTH
from tessera.schema_base import StrictModel

Credential = Annotated[
    str,
    Field(min_length=1, max_length=MAX_CREDENTIAL_LENGTH, description="The `credential` of the credential file."),
]
DeviceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_DEVICE_ID_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description="A stable id of the device, chosen by the vendor's software (printable ASCII, no spaces).",
    ),
]


class CloudContainerCreate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    organization_id: uuid.UUID | None = Field(
        default=None, description="Where the container lives; may be left out by someone in one organization only."
    )
    user_id: uuid.UUID | None = Field(
        default=None, description="The member an administrator creates it for; left out: the caller's own."
    )
    for_organization: bool = Field(
        default=False, description="The organization's own container (its administrators manage it), not a person's."
    )


class CloudDeviceRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    device_id: str
    first_seen_at: datetime
    last_seen_at: datetime


class CloudContainerRead(StrictModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    name: str
    organization_id: uuid.UUID
    user_id: uuid.UUID | None = Field(description="The owner; null for an organization's container.")
    credential_generation: int = Field(description="1 at creation, one more with every rotation.")
    credential_rotated_at: datetime
    device_limit: int
    devices: list[CloudDeviceRead] = Field(default_factory=list)
    created_at: datetime


class CredentialFileRead(StrictModel):
    """Save it as a file for the vendor's software: it is shown once, and only a hash of the credential is kept."""

    cloud_container_id: uuid.UUID
    credential: str
    api_base_url: str


class CloudContainerCreated(CloudContainerRead):
    credential_file: CredentialFileRead


class CloudAccessCreate(StrictModel):
    credential: Credential
    device_id: DeviceId


class CloudCertificate(StrictModel):
    license_id: uuid.UUID
    activation_id: uuid.UUID
    certificate: str = Field(description="A license certificate (compact JWS), audience: the container's id.")


class CloudAccessRead(StrictModel):
    cloud_container_id: uuid.UUID
    device_id: str
    expires_at: datetime = Field(description="When these certificates expire: access again before then.")
    certificates: list[CloudCertificate] = Field(description="One per license active in the container.")
