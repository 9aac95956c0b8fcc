"""Activation bodies. Ticket codes and activation secrets travel only in bodies, never in URLs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from tessera.activation.containers import ContainerSpec
from tessera.schema_base import StrictModel

SECRET_MAX_LENGTH = 200
Secret = Field(min_length=1, max_length=SECRET_MAX_LENGTH, repr=False, description="The activation secret, shown once.")


class ActivationCreate(StrictModel):
    code: str = Field(min_length=1, max_length=64, repr=False, description="The ticket code.")
    container: ContainerSpec = Field(description="Where the license goes: `software`, `dongle` or `cloud`.")


class ActivationCreated(StrictModel):
    activation_id: uuid.UUID
    secret: str = Field(description="Shown once (again only by activating into the same container, as a new one).")
    license_id: uuid.UUID
    certificate: str = Field(description="The license certificate: a compact JWS, verifiable with the JWKS.")


class ActivationRefresh(StrictModel):
    secret: str = Secret


class CertificateRead(StrictModel):
    certificate: str


class ActivationReturn(StrictModel):
    secret: str | None = Field(
        default=None, min_length=1, max_length=200, repr=False, description="Or an administrator's API key."
    )


class ActivationReturnedRead(StrictModel):
    activation_id: uuid.UUID
    status: str
    returned_at: datetime
    moves_left: int = Field(description="How many more times the ticket may move within the current period.")


class JwkRead(StrictModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JwksRead(StrictModel):
    keys: list[JwkRead]
