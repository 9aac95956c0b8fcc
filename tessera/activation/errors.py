"""The activation domain's problems, each with a stable code (rendered by `api/` like every TesseraError)."""

from __future__ import annotations

from tessera.errors import Conflict, FieldIssue, InvalidInput, NotFound, TesseraError


class TicketNotFound(NotFound):
    """Unknown code, or a ticket outside the caller's reach: deliberately one answer."""

    code = "ticket-not-found"
    title = "Ticket not found"

    def __init__(self) -> None:
        super().__init__("no ticket with this code", issues=[FieldIssue("code", "no ticket with this code")])


class ActivationNotFound(NotFound):
    """Unknown activation or wrong secret: deliberately one answer."""

    code = "activation-not-found"
    title = "Activation not found"

    def __init__(self) -> None:
        super().__init__("no activation with this id and secret")


class TicketRevoked(Conflict):
    code = "ticket-revoked"
    title = "Ticket revoked"

    def __init__(self) -> None:
        super().__init__("this ticket's license was revoked: it can no longer be activated")


class LicenseExpired(Conflict):
    code = "license-expired"
    title = "License expired"

    def __init__(self) -> None:
        super().__init__("this ticket's license has expired: it can no longer be activated")


class ContainerKindNotAllowed(InvalidInput):
    code = "container-kind-not-allowed"
    title = "Container kind not allowed"

    def __init__(self, kind: str, allowed: list[str]) -> None:
        message = f"this product is not activated into {kind} containers; it allows {', '.join(allowed) or 'none'}"
        super().__init__(message, issues=[FieldIssue("container.kind", message)])


class ContainerKindUnavailable(InvalidInput):
    """A container kind this deployment does not serve (yet)."""

    code = "container-kind-unavailable"
    title = "Container kind unavailable"

    def __init__(self, kind: str) -> None:
        message = f"{kind} containers cannot be activated into on this deployment"
        super().__init__(message, issues=[FieldIssue("container.kind", message)])


class ActivationsExhausted(Conflict):
    code = "activations-exhausted"
    title = "All activations in use"

    def __init__(self, maximum: int) -> None:
        super().__init__(
            f"this ticket is active in {maximum} container(s), as many as its product allows: return one of them first"
        )


class ActivationReturned(Conflict):
    code = "activation-returned"
    title = "Activation returned"

    def __init__(self) -> None:
        super().__init__("this activation was returned: activate the ticket again")


class MovesExhausted(TesseraError):
    """Too many returns of one ticket within the period; `retry_after` says when the next is allowed."""

    status = 429
    code = "moves-exhausted"
    title = "No moves left"

    def __init__(self, moves: int, period_days: float, retry_after: int) -> None:
        super().__init__(
            f"this ticket moved {moves} time(s) in the last {period_days:g} days, as often as allowed; "
            f"the next move is allowed in {retry_after} s"
        )
        self.retry_after = retry_after


class TooManyFailures(TesseraError):
    """Too many failed code or secret look-ups from this client, or from everyone."""

    status = 429
    code = "too-many-requests"
    title = "Too many failed attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after} s")
        self.retry_after = retry_after


class OfflineReplay(Conflict):
    """An offline request naming an older certificate than the newest issued: an old request played again."""

    code = "offline-replay"
    title = "Offline request replayed"

    def __init__(self, held: int, issued: int) -> None:
        super().__init__(
            f"the request says the device holds certificate {held}, but {issued} was issued since: upload the "
            "request that got it again, or make a new request on the device",
            issues=[FieldIssue("last_seq", f"older than the newest certificate issued ({issued})")],
        )


class OfflineSeqUnknown(InvalidInput):
    code = "offline-seq-unknown"
    title = "Unknown certificate number"

    def __init__(self, held: int, issued: int) -> None:
        super().__init__(
            f"the request names certificate {held}, but only {issued} were issued",
            issues=[FieldIssue("last_seq", f"no certificate {held} was issued for this activation")],
        )


class OfflineNonceReused(Conflict):
    code = "offline-nonce-reused"
    title = "Nonce used by another request"

    def __init__(self) -> None:
        super().__init__(
            "this nonce was answered for another request: make a new request on the device",
            issues=[FieldIssue("nonce", "used by another request")],
        )


class OfflineRequestTooLarge(TesseraError):
    status = 413
    code = "offline-request-too-large"
    title = "Offline request too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"a request file is at most {limit} bytes")


class OfflineRequestMalformed(InvalidInput):
    code = "offline-request-malformed"
    title = "Malformed offline request"

    def __init__(self, reason: str) -> None:
        super().__init__(f"this is not a request file: {reason}", issues=[FieldIssue("(body)", reason)])


class ContainerMismatch(InvalidInput):
    code = "container-mismatch"
    title = "Another container"

    def __init__(self) -> None:
        super().__init__(
            "this activation belongs to another container",
            issues=[FieldIssue("container", "not the container of this activation")],
        )
