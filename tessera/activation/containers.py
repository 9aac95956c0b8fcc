"""Containers a license is activated into, one pydantic model per kind, and how each kind is bound.

The request names a container by `kind` (the union's discriminator). Binding turns it into the container id
certificates carry as `aud`: `software:<fingerprint>`, `dongle:<serial>`, `cloud:<cloud container id>`.
Binding a kind is a registered function, so a kind whose containers Tessera holds itself (cloud: a credential
to check, a device limit) plugs in with `register_container_kind` and nothing else changes; a kind without a
registered binder is answered with `container-kind-unavailable`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation.errors import ContainerKindUnavailable
from tessera.schema_base import StrictModel

Fingerprint = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9._:+/=-]{8,256}$", strict=True), Field(description="8-256 characters")
]
Serial = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", strict=True)]


class SoftwareContainer(StrictModel):
    """A device, known by the fingerprint the vendor's software computes for it."""

    kind: Literal["software"]
    fingerprint: Fingerprint


class DongleContainer(StrictModel):
    """A hardware dongle, known by its serial number."""

    kind: Literal["dongle"]
    serial: Serial


class CloudContainer(StrictModel):
    """A cloud container held by Tessera, reached with its credential."""

    kind: Literal["cloud"]
    cloud_container_id: uuid.UUID
    credential: str = Field(min_length=1, max_length=1024, repr=False)


ContainerSpec = Annotated[SoftwareContainer | DongleContainer | CloudContainer, Field(discriminator="kind")]
AnyContainer = SoftwareContainer | DongleContainer | CloudContainer


@dataclass(frozen=True)
class BoundContainer:
    kind: str
    container_id: str
    """What certificates carry as `aud`; unique per ticket among its active activations."""


@dataclass(frozen=True)
class BindingContext:
    """What a binder may need besides the container: the ticket being activated, who asks, and when."""

    ticket_id: uuid.UUID
    license_id: uuid.UUID
    client: str
    """The client's address, for rate limiting a binder's own credential look-ups."""
    secret_key: bytes
    now: datetime


Binder = Callable[[AsyncSession, AnyContainer, BindingContext], Awaitable[BoundContainer]]


async def _bind_software(session: AsyncSession, container: AnyContainer, context: BindingContext) -> BoundContainer:  # noqa: ARG001
    assert isinstance(container, SoftwareContainer)
    return BoundContainer("software", f"software:{container.fingerprint}")


async def _bind_dongle(session: AsyncSession, container: AnyContainer, context: BindingContext) -> BoundContainer:  # noqa: ARG001
    assert isinstance(container, DongleContainer)
    return BoundContainer("dongle", f"dongle:{container.serial}")


_BINDERS: dict[str, Binder] = {"software": _bind_software, "dongle": _bind_dongle}


def register_container_kind(kind: str, binder: Binder) -> None:
    """Serve activations into containers of `kind` with `binder` (it raises a TesseraError to refuse)."""
    _BINDERS[kind] = binder


async def bind_container(session: AsyncSession, container: AnyContainer, context: BindingContext) -> BoundContainer:
    binder = _BINDERS.get(container.kind)
    if binder is None:
        raise ContainerKindUnavailable(container.kind)
    return await binder(session, container, context)


def container_id_of(kind: str, value: str) -> str:
    """The container id (`aud`) of a software or dongle container, e.g. for `tessera verify --fingerprint`."""
    return f"{kind}:{value}"
