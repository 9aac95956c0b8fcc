"""Why a cloud container request is refused, each with a stable code (rendered like every TesseraError)."""

from __future__ import annotations

from tessera.errors import Conflict, NotAuthenticated


class InvalidCredential(NotAuthenticated):
    """The container is unknown, deleted, or the credential is not its current one: one answer for all three."""

    code = "invalid-credential"
    title = "Invalid cloud container credential"


class DeviceLimitReached(Conflict):
    """The container is used from as many devices as it may be; an owner or admin can release one."""

    code = "device-limit-reached"
    title = "Device limit reached"
