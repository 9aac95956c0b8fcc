"""Why a request about a subscription is refused, each with a stable code (rendered like every TesseraError)."""

from __future__ import annotations

from tessera.errors import Conflict


class SubscriptionPending(Conflict):
    """It waits for its first activation: no term has started, so there is nothing to cancel (revoke instead)."""

    code = "subscription-pending"
    title = "Subscription pending"


class SubscriptionEnded(Conflict):
    """Expired or revoked: nothing about it can change any more."""

    code = "subscription-ended"
    title = "Subscription ended"


class ManagedByErp(Conflict):
    """Its terms are the ERP's to extend or end (POST /subscriptions/{id}/terms), not Tessera's to cancel."""

    code = "subscription-managed-by-erp"
    title = "Subscription managed by the ERP"


class NotManagedByErp(Conflict):
    """ERP terms are recorded only for subscriptions whose product says `managed_by: erp`."""

    code = "subscription-not-managed-by-erp"
    title = "Subscription not managed by the ERP"


class CancellationExists(Conflict):
    """A cancellation is requested or applied already; its effective end is in the detail."""

    code = "cancellation-exists"
    title = "Cancellation exists"


class NothingToUncancel(Conflict):
    code = "nothing-to-uncancel"
    title = "Nothing to uncancel"


class UncancelTooLate(Conflict):
    """The cancellation has taken effect (its effective end has passed)."""

    code = "uncancel-too-late"
    title = "Too late to uncancel"


class NotRenewing(Conflict):
    """A cancelled subscription has no next renewal whose seats could change; uncancel it first."""

    code = "subscription-not-renewing"
    title = "Subscription not renewing"


class LicenseInSubscription(Conflict):
    """A subscription's licenses are revoked with the subscription, never one by one."""

    code = "license-in-subscription"
    title = "License belongs to a subscription"


class AlreadyRevoked(Conflict):
    code = "already-revoked"
    title = "Already revoked"


class ExternalRefReused(Conflict):
    """An ERP reference names one term change; the same reference with another date is a different request."""

    code = "external-ref-reused"
    title = "External reference reused"


class NotWaitingForDecision(Conflict):
    """Nothing of this subscription or license waits for an approval decision."""

    code = "not-waiting"
    title = "Not waiting for a decision"


class EffectiveEndMoved(Conflict):
    """The cancellation would end another term than the one the person confirmed (a deadline passed meanwhile)."""

    code = "effective-end-moved"
    title = "Effective end moved"
