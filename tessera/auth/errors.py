"""Sign-in's own problems, each with a stable code (rendered by `api/` like every TesseraError)."""

from __future__ import annotations

from tessera.errors import Conflict, FieldIssue, InvalidInput, NotAuthenticated, NotFound, TesseraError


class InvitationNotFound(NotFound):
    code = "invitation-not-found"
    title = "Invitation not found"


class InvitationAlreadyRedeemed(Conflict):
    code = "invitation-redeemed"
    title = "Invitation already redeemed"


class InvitationExpired(TesseraError):
    status = 410
    code = "invitation-expired"
    title = "Invitation expired"


class InvitationForAnotherAddress(InvalidInput):
    code = "invitation-for-another-address"
    title = "Invitation for another address"

    def __init__(self) -> None:
        super().__init__(
            "this invitation was sent to another e-mail address",
            issues=[FieldIssue("email", "not the address this invitation was sent to")],
        )


class ResetNotFound(NotFound):
    code = "password-reset-not-found"
    title = "Password-reset link not found"


class ResetUsed(Conflict):
    code = "password-reset-used"
    title = "Password-reset link used already"


class ResetExpired(TesseraError):
    status = 410
    code = "password-reset-expired"
    title = "Password-reset link expired"


class WeakPassword(InvalidInput):
    code = "weak-password"
    title = "Password refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, issues=[FieldIssue("password", reason)])


class SignInFailed(NotAuthenticated):
    """Wrong e-mail or wrong password: deliberately one answer for both."""

    code = "sign-in-failed"
    title = "Sign-in failed"

    def __init__(self) -> None:
        super().__init__("the e-mail address or the password is wrong")


class TooManyAttempts(TesseraError):
    status = 429
    code = "too-many-requests"
    title = "Too many attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after
