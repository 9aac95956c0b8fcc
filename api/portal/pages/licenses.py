"""Create a license: organization → product group → product → fields and modules → quantity and allocation.

Steps 1 to 3 are links (GET, the choices in the query string); steps 4 and 5 are forms whose earlier choices travel
in hidden fields. Every step checks again, through the rights service, what the steps before chose, so a
tampered URL or form is refused as the API would refuse it. The last step hands the order to the same intake as
`POST /api/v1/orders`, with an Idempotency-Key made from a nonce of the form: a double click or a reload creates
one order.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from api.deps import Session
from api.portal.deps import Form, Page, SignedInPage, text
from api.portal.pages import license_form as lf
from api.portal.render import field_errors, redirect, render, translate
from api.portal.routing import PortalRoute
from api.routes.orders import place_order
from tessera.errors import FieldIssue, Forbidden, InvalidInput, NotFound
from tessera.models import Organization, Product, Visibility
from tessera.orders import intake
from tessera.orders.intake import IDEMPOTENCY_FIELD
from tessera.orders.schema import MAX_QUANTITY, Allocation, OrderRequest
from tessera.principal import Principal

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

TEMPLATE = "portal/licenses/new.html"
Code = Annotated[str | None, Query(max_length=64)]


def _principal(page: Page) -> Principal:
    assert page.viewer is not None
    return page.viewer.principal


def _step(page: Page, step: int, *, status: int = 200, **context: Any) -> Response:
    return render(page, TEMPLATE, status=status, nav="create", step=step, **context)


@router.get("/licenses/new")
async def new_license(
    page: SignedInPage,
    session: Session,
    organization: uuid.UUID | None = None,
    group: Code = None,
    product: Code = None,
) -> Response:
    """Create a license, one step per page."""
    principal = _principal(page)
    if organization is None:
        return _step(page, 1, organizations=await lf.organizations(session, principal))
    chosen = await lf.chosen_organization(session, principal, organization)
    if not group:
        return _step(page, 2, organization=chosen, offers=await lf.group_offers(session, principal, chosen.id))
    offer = await lf.chosen_group(session, principal, chosen.id, group)
    if not product:
        return _step(page, 3, organization=chosen, offer=offer, products=await lf.products_of(session, offer.group))
    item = await lf.chosen_product(session, offer.group, product)
    return _step(page, 4, organization=chosen, offer=offer, product=item, fields=lf.field_views(item, None), form=None)


@router.post("/licenses/new")
async def submit_license(page: SignedInPage, form: Form, session: Session) -> Response:
    """Check the fields and modules (then ask for quantity and allocation), or create the license."""
    principal = _principal(page)
    try:
        organization_id = uuid.UUID(text(form, "organization", max_length=40))
    except ValueError:
        raise NotFound("no such organization") from None
    group_code, product_code = text(form, "group", max_length=64), text(form, "product", max_length=64)
    if text(form, "step", max_length=20) == "create":
        return await _create(page, form, session, principal, organization_id, group_code, product_code)
    return await _check_details(page, form, session, principal, organization_id, group_code, product_code)


async def _context(
    session: Session, principal: Principal, organization_id: uuid.UUID, group_code: str, product_code: str
) -> tuple[Organization, lf.GroupOffer, Product]:
    organization = await lf.chosen_organization(session, principal, organization_id)
    offer = await lf.chosen_group(session, principal, organization.id, group_code)
    return organization, offer, await lf.chosen_product(session, offer.group, product_code)


async def _details_page(
    page: Page, form: FormData, session: Session, ids: tuple[uuid.UUID, str, str], errors: dict[str, str]
) -> Response:
    organization, offer, product = await _context(session, _principal(page), *ids)
    return _step(
        page,
        4,
        status=422,
        organization=organization,
        offer=offer,
        product=product,
        fields=lf.field_views(product, form),
        form=form,
        errors=errors,
    )


async def _finish_page(
    page: Page,
    form: FormData,
    session: Session,
    ids: tuple[uuid.UUID, str, str],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    nonce: str | None = None,
) -> Response:
    principal = _principal(page)
    organization, offer, product = await _context(session, principal, *ids)
    assert page.viewer is not None
    return _step(
        page,
        5,
        status=status,
        organization=organization,
        offer=offer,
        product=product,
        fields=lf.field_views(product, form),
        modules=lf.submitted_modules(form),
        members=await lf.members(session, principal, organization.id),
        form=form,
        errors=errors or {},
        nonce=nonce or secrets.token_urlsafe(24),
        max_quantity=MAX_QUANTITY if offer.left is None else max(min(offer.left, MAX_QUANTITY), 1),
        visibilities=[value.value for value in Visibility],
    )


async def _check_details(
    page: Page,
    form: FormData,
    session: Session,
    principal: Principal,
    organization_id: uuid.UUID,
    group_code: str,
    product_code: str,
) -> Response:
    """Step 4 sent: check the values as the intake will, then show step 5 (or step 4 again with the problems)."""
    ids = (organization_id, group_code, product_code)
    _organization, _offer, product = await _context(session, principal, *ids)
    _values, issues = intake.check_fields(product, lf.submitted_fields(product, form))
    _modules, module_issues = intake.check_modules(product, lf.submitted_modules(form))
    issues += module_issues
    if issues:
        return await _details_page(page, form, session, ids, _detail_errors(issues))
    return await _finish_page(page, form, session, ids)


def _detail_errors(issues: list[FieldIssue]) -> dict[str, str]:
    """Module problems are shown once above the modules (the API names them by position in its list)."""
    errors = field_errors([issue for issue in issues if not issue.field.startswith("modules.")])
    modules = [issue.message for issue in issues if issue.field.startswith("modules.")]
    if modules:
        errors["modules"] = "; ".join(modules)
    return errors


def _request(
    form: FormData, product: Product, organization_id: uuid.UUID
) -> tuple[OrderRequest | None, list[FieldIssue]]:
    quantity_text = text(form, "quantity", max_length=12).strip()
    issues: list[FieldIssue] = []
    if not lf.INTEGER.fullmatch(quantity_text):
        issues.append(FieldIssue("quantity", "a whole number of licenses"))
    allocation, user_id = _allocation(text(form, "allocation", max_length=60))
    if allocation is None:
        issues.append(FieldIssue("allocation", "choose who gets the tickets"))
    visibility = text(form, "visibility", max_length=20)
    if visibility not in {value.value for value in Visibility}:
        issues.append(FieldIssue("visibility", "choose all_members or admins_only"))
    if issues:
        return None, issues
    try:
        request = OrderRequest.model_validate(
            {
                "organization_id": organization_id,
                "product": product.code,
                "quantity": int(quantity_text),
                "fields": lf.submitted_fields(product, form),
                "modules": lf.submitted_modules(form),
                "allocation": allocation,
                "user_id": user_id,
                "visibility": visibility,
            }
        )
    except ValidationError as error:
        return None, [
            FieldIssue(".".join(str(part) for part in problem["loc"]) or "order", problem["msg"])
            for problem in error.errors()
        ]
    return request, []


def _allocation(value: str) -> tuple[str | None, uuid.UUID | None]:
    if value in (Allocation.requester.value, Allocation.organization.value):
        return value, None
    if value.startswith("user:"):
        try:
            return Allocation.user.value, uuid.UUID(value.removeprefix("user:"))
        except ValueError:
            return None, None
    return None, None


async def _create(
    page: Page,
    form: FormData,
    session: Session,
    principal: Principal,
    organization_id: uuid.UUID,
    group_code: str,
    product_code: str,
) -> Response:
    """Step 5 sent: create the order (once per nonce) and show it."""
    ids = (organization_id, group_code, product_code)
    _organization, _offer, product = await _context(session, principal, *ids)
    nonce = lf.nonce_of(form)
    request, issues = _request(form, product, organization_id)
    if nonce is None:
        issues.append(FieldIssue("nonce", "the form is incomplete; fill it in again"))
    if request is None or nonce is None:
        await session.rollback()
        return await _finish_page(page, form, session, ids, status=422, errors=field_errors(issues))
    try:
        accepted, _code = await place_order(session, page.state, principal, request, f"portal-{nonce}")
    except InvalidInput as error:
        await session.rollback()
        return await _refused(page, form, session, ids, list(error.issues), status=422)
    except Forbidden as error:
        if not error.issues:
            raise
        await session.rollback()
        return await _refused(page, form, session, ids, list(error.issues), status=403)
    return redirect(f"/orders/{accepted.order.id}")


async def _refused(
    page: Page, form: FormData, session: Session, ids: tuple[uuid.UUID, str, str], issues: list[FieldIssue], status: int
) -> Response:
    """The intake refused the order: field problems go back to step 4, the others stay on step 5."""
    if any(issue.field.startswith(("fields.", "modules.")) for issue in issues):
        return await _details_page(page, form, session, ids, _detail_errors(issues))
    errors = field_errors(issues)
    if errors.pop(IDEMPOTENCY_FIELD, None) is not None:
        # The same form was sent again with other values: a new nonce makes it a new order.
        errors["order"] = translate(page, "The form was sent before with other values; check them and send it again.")
    return await _finish_page(page, form, session, ids, status=status, errors=errors)
