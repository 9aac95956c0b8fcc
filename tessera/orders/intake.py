"""Accepting an order: validate it against the product, apply the acting rule, reserve quota, store it once.

Idempotency: an `Idempotency-Key` is scoped to the API key that sent it (a unique constraint on the order
table). The same key with the same body (compared by the sha256 of its canonical JSON) answers with the order
it created; with another body it is refused. A known `external_ref` answers with its order. When two requests
race, the unique constraints decide: the loser's transaction fails, is rolled back, and it answers with the
winner's order — so concurrent retries never create a second order or reserve quota twice.

`external_ref` is unique per *scope*: the top-level organization below the vendor (the reseller, or a direct
customer) that the order's organization belongs to. An ERP is that organization's, and its references are
unique within it; two resellers' ERPs are free to use the same numbers, and neither learns of the other's.

Quota is reserved here, in the order's own transaction, under the lock of the grant's delegation tree and by
one conditional UPDATE (`tessera.rights.quota`), so concurrent orders and delegations can never together
exceed it, and a grant withdrawn since the rights check is not used; the workflow gives back what it did not
create on rejection or failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.catalog.schema import SubscriptionTerms
from tessera.errors import Conflict, FieldIssue, Forbidden, InvalidInput
from tessera.fields import FieldSpec, FieldValue, coerce_value
from tessera.models import (
    Membership,
    Order,
    OrderStatus,
    Organization,
    Permission,
    Product,
    ProductKind,
    User,
    new_id,
    utcnow,
)
from tessera.orders.errors import QuotaExceeded
from tessera.orders.launch import OrderStart, order_start
from tessera.orders.schema import Allocation, OrderRequest
from tessera.principal import Principal
from tessera.processes.schema import WorkflowsConfig
from tessera.rights import acting, quota, reach
from tessera.subscriptions.creation import MAX_IMPORTED_TERMS
from tessera.subscriptions.plans import local_date, term_covering
from tessera.subscriptions.terms import TermPlan

IDEMPOTENCY_FIELD = "header.Idempotency-Key"
TAKEOVER_FIELD = "subscription_start"
WORKFLOW_INPUT_LIMIT_BYTES = 1_900_000
"""Temporal refuses payloads over 2 MB (its default blob size limit); this leaves room for the envelope."""


@dataclass(frozen=True)
class Accepted:
    """The order that answers the request; `start` is set when this request stored it."""

    order: Order
    start: OrderStart | None

    @property
    def created(self) -> bool:
        return self.start is not None


async def accept_order(
    session: AsyncSession,
    principal: Principal,
    request: OrderRequest,
    *,
    idempotency_key: str,
    workflows_config: Callable[[], WorkflowsConfig],
) -> Accepted:
    """Store a new order (flushed, not committed) or find the one this request repeats."""
    fingerprint = request.fingerprint()
    earlier = await _same_key_order(session, principal, idempotency_key, fingerprint)
    if earlier is not None:
        return Accepted(earlier, None)
    path = await reach.path_ids(session, request.organization_id)
    if not reach.sees_path(principal, path):
        raise InvalidInput(
            "no such organization", issues=[FieldIssue("organization_id", "no organization with this id")]
        )
    # Only now, with the organization known to be within reach, may a reference be looked up in its scope.
    scope = external_ref_scope(path)
    earlier = await _same_ref_order(session, principal, request, scope)
    if earlier is not None:
        return Accepted(earlier, None)
    product = await session.scalar(select(Product).where(Product.code == request.product))
    if product is None:
        raise InvalidInput(
            f"unknown product {request.product!r}", issues=[FieldIssue("product", "no product with this code")]
        )
    # Quota is checked by the conditional UPDATE below, not here, so its refusal has one place and one code.
    right = await acting.authorize(
        session, principal, Permission.create, product.group_id, request.organization_id, quantity=0
    )
    fields, issues = check_fields(product, request.fields)
    modules, module_issues = check_modules(product, request.modules)
    issues += module_issues + await _user_issues(session, principal, request)
    issues += await takeover_issues(session, principal, product, request)
    if issues:
        raise InvalidInput("; ".join(f"{issue.field}: {issue.message}" for issue in issues[:5]), issues=issues)
    order = Order(
        id=new_id(),
        organization_id=request.organization_id,
        product_id=product.id,
        fields=fields,
        modules=modules,
        quantity=request.quantity,
        allocation=request.allocation.value,
        allocate_to_user_id=request.user_id if request.allocation == Allocation.user else None,
        visibility=request.visibility.value,
        external_ref=request.external_ref,
        external_ref_scope_id=scope if request.external_ref is not None else None,
        status=OrderStatus.accepted,
        grant_id=right.grant.id if right.grant is not None else None,
        requested_by_user_id=principal.user_id,
        requested_by_api_key_id=principal.api_key_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        trail=[],
        subscription_start=request.subscription_start,
    )
    order.workflow_id = f"order-{order.id}"
    # Resolve the steps before storing anything: an invalid workflows.yaml refuses the order outright.
    start = await order_start(session, order, workflows_config())
    order.process_version = start.process.version
    check_workflow_input_size(start)
    session.add(order)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        earlier = await _same_key_order(session, principal, idempotency_key, fingerprint)
        if earlier is None:
            earlier = await _same_ref_order(session, principal, request, scope)
        if earlier is None:
            raise
        return Accepted(earlier, None)
    if right.grant is not None:
        await reserve_quota(session, right.grant.id, request.quantity)
    if await reach.path_ids(session, request.organization_id) != path:
        # Moved while this was checked: the rights and the external_ref scope were those of its old place.
        raise Conflict(
            "the organization was moved while the order was checked; send the order again",
            issues=[FieldIssue("organization_id", "moved just now; repeat the request")],
        )
    return Accepted(order, start)


def workflow_input_bytes(start: OrderStart) -> int:
    """About what the order's workflow input weighs as Temporal receives it (JSON)."""
    parts = (start.process.model_dump_json(), start.facts.model_dump_json(), start.summary, start.workflow_id)
    return sum(len(part.encode()) for part in parts)


def check_workflow_input_size(start: OrderStart) -> None:
    """Refuse, before anything is stored or reserved, an order whose workflow Temporal could never start."""
    size = workflow_input_bytes(start)
    if size > WORKFLOW_INPUT_LIMIT_BYTES:
        raise InvalidInput(
            f"the order is too large to run: its workflow input would be {size} bytes, at most "
            f"{WORKFLOW_INPUT_LIMIT_BYTES} are possible",
            issues=[FieldIssue("fields", "shorten the field values (or the organization's custom fields)")],
        )


def external_ref_scope(path: list[uuid.UUID]) -> uuid.UUID:
    """The organization right below the vendor on `path` (itself first), or the vendor for its own orders."""
    return path[-2] if len(path) >= 2 else path[-1]


async def reserve_quota(session: AsyncSession, grant_id: uuid.UUID, quantity: int) -> None:
    """Count `quantity` against the grant: refused if it has too little left, or was withdrawn since the check.

    What the grant delegated onwards is carved out of it, so it counts as used here.
    """
    reservation = await quota.reserve(session, grant_id, quantity)
    if not reservation.live:
        raise Forbidden(
            "the grant that covers this organization was withdrawn",
            issues=[FieldIssue("organization_id", "no live grant covers this organization any more")],
        )
    if not reservation.reserved:
        left = max(reservation.left or 0, 0)
        raise QuotaExceeded(
            f"the grant's quota allows {left} more licenses, not {quantity}",
            issues=[FieldIssue("quantity", f"at most {left} under the grant's quota")],
        )


async def _same_key_order(
    session: AsyncSession, principal: Principal, idempotency_key: str, fingerprint: str
) -> Order | None:
    """The order this request repeats by its Idempotency-Key (the same body required)."""
    same_key = await session.scalar(
        select(Order).where(
            Order.requested_by_api_key_id == principal.api_key_id, Order.idempotency_key == idempotency_key
        )
    )
    if same_key is not None and same_key.request_hash != fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was used with another body",
            issues=[FieldIssue(IDEMPOTENCY_FIELD, "already used for a different order; use a new key")],
        )
    return same_key


async def _same_ref_order(
    session: AsyncSession, principal: Principal, request: OrderRequest, scope: uuid.UUID
) -> Order | None:
    """The order with this external_ref in the same scope, if any."""
    if request.external_ref is None:
        return None
    known = await session.scalar(
        select(Order).where(Order.external_ref_scope_id == scope, Order.external_ref == request.external_ref)
    )
    if known is None:
        return None
    if not reach.sees_path(principal, await reach.path_ids(session, known.organization_id)):
        # Same scope, someone else's order (e.g. a sibling customer's): taken, but which order is not said.
        raise Conflict(
            "this external_ref belongs to an order you cannot see",
            issues=[FieldIssue("external_ref", "already used by another order")],
        )
    return known


def check_fields(product: Product, given: dict[str, Any]) -> tuple[dict[str, Any], list[FieldIssue]]:
    """Values checked against the product's fields and defaults filled in, as stored (dates as ISO text)."""
    specs = {spec.name: spec for spec in (FieldSpec.model_validate(raw) for raw in product.fields)}
    issues: list[FieldIssue] = []
    known = ", ".join(specs) or "none"
    for name in given:
        if name not in specs:
            issues.append(FieldIssue(f"fields.{name}", f"unknown field; the fields of {product.code} are: {known}"))
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            try:
                values[name] = _stored(coerce_value(spec, given[name]))
            except ValueError as problem:
                issues.append(FieldIssue(f"fields.{name}", str(problem)))
        elif spec.default is not None:
            values[name] = _stored(spec.default)
        elif spec.required:
            issues.append(FieldIssue(f"fields.{name}", "required field is missing"))
    return values, issues


def _stored(value: FieldValue) -> bool | int | str:
    return value.isoformat() if isinstance(value, date) else value


def check_modules(product: Product, given: list[str] | None) -> tuple[list[str], list[FieldIssue]]:
    """The modules switched on: those asked for (each a module of the product, once), or the default-on ones."""
    defined = {str(module["code"]): bool(module.get("default", False)) for module in product.modules}
    if given is None:
        return [code for code, on in defined.items() if on], []
    issues: list[FieldIssue] = []
    seen: set[str] = set()
    known = ", ".join(defined) or "none"
    for index, code in enumerate(given):
        if code not in defined:
            issues.append(
                FieldIssue(f"modules.{index}", f"unknown module {code!r}; the modules of {product.code}: {known}")
            )
        elif code in seen:
            issues.append(FieldIssue(f"modules.{index}", f"module {code!r} is listed twice"))
        seen.add(code)
    return list(dict.fromkeys(given)), issues


async def takeover_issues(
    session: AsyncSession, principal: Principal, product: Product, request: OrderRequest
) -> list[FieldIssue]:
    """A take-over (`subscription_start`): a subscription product, a vendor administrator, a day not in the future
    and at most `MAX_IMPORTED_TERMS` terms back (in the organization's time zone, as the subscription will be)."""
    start = request.subscription_start
    if start is None:
        return []
    if product.kind != ProductKind.subscription:
        return [FieldIssue(TAKEOVER_FIELD, f"{product.code} is not a subscription product")]
    if not principal.vendor_admin:
        raise Forbidden(
            "only vendor administrators take over subscriptions from another system",
            issues=[FieldIssue(TAKEOVER_FIELD, "leave it out, or ask a vendor administrator")],
        )
    organization = await session.get(Organization, request.organization_id)
    timezone = (organization.timezone if organization else None) or "UTC"
    now = utcnow()
    if start > local_date(now, timezone):
        return [FieldIssue(TAKEOVER_FIELD, f"in the future (today is {local_date(now, timezone)} in {timezone})")]
    plan = TermPlan(
        settings=SubscriptionTerms.model_validate(product.subscription or {}),
        start=start,
        timezone=timezone,
        price=product.price_amount,
        currency=product.price_currency,
    )
    try:
        earlier = term_covering(plan, now).number - 1
    except ValueError:
        earlier = MAX_IMPORTED_TERMS + 1
    if earlier > MAX_IMPORTED_TERMS:
        return [FieldIssue(TAKEOVER_FIELD, f"at most {MAX_IMPORTED_TERMS} earlier terms can be taken over")]
    return []


async def _user_issues(session: AsyncSession, principal: Principal, request: OrderRequest) -> list[FieldIssue]:
    if request.allocation != Allocation.user:
        if request.user_id is not None:
            return [FieldIssue("user_id", "give a user only with `allocation: user`")]
        return []
    if request.user_id is None:
        return [FieldIssue("user_id", "required with `allocation: user`")]
    member = await session.scalar(
        allocatable_users(principal, request.organization_id).where(User.id == request.user_id).limit(1)
    )
    if member is None:
        return [FieldIssue("user_id", "no such member of the organization or the groups below it")]
    return []


def allocatable_users(principal: Principal, organization_id: uuid.UUID) -> Select[User]:
    """The people an order for the organization may name (`allocation: user`): members of it or the groups below
    it, whom the caller reaches."""
    members = select(Membership.user_id).where(Membership.organization_id.in_(reach.subtree_ids([organization_id])))
    return select(User).where(User.id.in_(members), reach.user_filter(principal))
