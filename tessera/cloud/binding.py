"""The `cloud` container kind of activations: a ticket is activated into a cloud container with its credential.

Registered with the activation service once per process (`register_cloud_kind`, from the API's start-up), with
the process's failure limits: a wrong credential counts as a failed look-up of the client, as on `/access`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tessera.activation.containers import (
    AnyContainer,
    BindingContext,
    BoundContainer,
    CloudContainer,
    register_container_kind,
)
from tessera.activation.limits import FailureLimiter, FailureLimits
from tessera.cloud import containers
from tessera.cloud.errors import InvalidCredential

LIMITER = "cloud-credentials"
"""The limiter of failed cloud container credential look-ups (per client address and overall)."""
KIND = "cloud"


def container_id_of(cloud_container_id: object) -> str:
    """The activation's container id, the certificates' `aud`."""
    return f"{KIND}:{cloud_container_id}"


def credential_limiter(limits: FailureLimits) -> FailureLimiter:
    return limits.limiter(LIMITER)


def register_cloud_kind(limits: FailureLimits) -> None:
    """Serve `{"kind": "cloud", "cloud_container_id", "credential"}` activations, counting bad credentials."""
    limiter = credential_limiter(limits)

    async def bind_cloud(session: AsyncSession, container: AnyContainer, context: BindingContext) -> BoundContainer:
        assert isinstance(container, CloudContainer)
        await limiter.check(context.client)
        try:
            # Locked, so a deletion of the container waits for this activation (or this one sees it deleted).
            found = await containers.open_container(
                session, context.secret_key, container.cloud_container_id, container.credential, lock=True
            )
        except InvalidCredential:
            await limiter.failed(context.client)
            raise
        return BoundContainer(KIND, container_id_of(found.id))

    register_container_kind(KIND, bind_cloud)
