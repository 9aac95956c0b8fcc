"""The create-license wizard's form handling: product fields as typed inputs, and the choices each step offers.

Every value a browser sends is text; it is turned into what the API's JSON would carry and checked by the same
intake as the API (`tessera.orders.intake`), so the messages next to the inputs are the API's.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api.portal.deps import text
from tessera.catalog import service as catalog
from tessera.errors import Forbidden, NotFound
from tessera.fields import MAX_TEXT_LENGTH, FieldSpec, FieldType
from tessera.models import Organization, Permission, Product, ProductGroup, User
from tessera.orders import intake
from tessera.principal import Principal
from tessera.rights import acting, quota, reach

MAX_ORGANIZATIONS = 300
"""The most organizations the first step offers (by name); beyond that a vendor works with the API."""
INTEGER = re.compile(r"[+-]?\d{1,18}")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class GroupOffer:
    group: ProductGroup
    left: int | None
    """Licenses the grant may still create; None: no limit."""


@dataclass
class FieldView:
    """One product field as an input: its value as text (what the browser sent, else the default)."""

    name: str
    label: Any
    type: str
    required: bool
    value: str = ""
    checked: bool = False
    options: list[tuple[str, str]] = field(default_factory=list)
    min: str = ""
    max: str = ""
    max_length: int = MAX_TEXT_LENGTH
    has_default: bool = False

    @property
    def input_name(self) -> str:
        return f"field.{self.name}"

    @property
    def error_key(self) -> str:
        return f"fields.{self.name}"


def choice_key(value: object) -> str:
    """How a choice travels in a form: dates as YYYY-MM-DD, everything else as JSON (`30`, `"gold"`, `true`)."""
    return value.isoformat() if isinstance(value, date) else json.dumps(value)


def _shown(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def specs_of(product: Product) -> list[FieldSpec]:
    return [FieldSpec.model_validate(raw) for raw in product.fields]


def field_views(product: Product, form: FormData | None) -> list[FieldView]:
    """The product's fields as inputs, preset with the submitted values (or with the defaults on a first visit)."""
    views = []
    for spec in specs_of(product):
        view = FieldView(
            name=spec.name,
            label=spec.label,
            type=spec.type.value,
            required=spec.required,
            has_default=spec.default is not None,
        )
        sent = None if form is None else form.get(view.input_name)
        sent_text = sent if isinstance(sent, str) else None
        if spec.type == FieldType.bool:
            view.checked = sent_text is not None if form is not None else bool(spec.default)
        elif spec.type == FieldType.choice:
            view.options = [(choice_key(item), _shown(item)) for item in spec.allowed or []]
            view.value = sent_text if form is not None and sent_text is not None else _default_key(spec)
        else:
            view.value = sent_text if form is not None and sent_text is not None else _default_text(spec)
        view.min = "" if spec.min is None else _shown(spec.min)
        view.max = "" if spec.max is None else _shown(spec.max)
        view.max_length = spec.max_length or MAX_TEXT_LENGTH
        views.append(view)
    return views


def _default_key(spec: FieldSpec) -> str:
    return "" if spec.default is None else choice_key(spec.default)


def _default_text(spec: FieldSpec) -> str:
    return "" if spec.default is None else _shown(spec.default)


def submitted_fields(product: Product, form: FormData) -> dict[str, bool | int | str]:
    """The field values as the API's JSON would carry them; an empty input is left out (its default applies)."""
    values: dict[str, bool | int | str] = {}
    for spec in specs_of(product):
        name = f"field.{spec.name}"
        if spec.type == FieldType.bool:
            values[spec.name] = form.get(name) is not None
            continue
        raw = text(form, name, max_length=MAX_TEXT_LENGTH)
        if spec.type != FieldType.string:
            raw = raw.strip()
        if raw == "":
            continue
        if spec.type == FieldType.int and INTEGER.fullmatch(raw):
            values[spec.name] = int(raw)
        elif spec.type == FieldType.choice:
            match = next((item for item in spec.allowed or [] if choice_key(item) == raw), None)
            values[spec.name] = raw if match is None else _json_value(match)
        else:
            # Text the intake refuses with its own message (`'abc' is not of type int`).
            values[spec.name] = raw
    return values


def _json_value(value: object) -> bool | int | str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def submitted_modules(form: FormData) -> list[str]:
    return [value for value in form.getlist("module") if isinstance(value, str)][:200]


async def organizations(session: AsyncSession, principal: Principal) -> list[Organization]:
    """Organizations the person administers (each with its subtree) and may create licenses for under some grant."""
    query = select(Organization).order_by(Organization.name, Organization.id).limit(MAX_ORGANIZATIONS)
    if not principal.vendor_admin:
        if not principal.admin_of:
            return []
        query = query.where(Organization.id.in_(reach.subtree_ids(principal.admin_of)))
    found = list((await session.scalars(query)).all())
    if principal.vendor_admin:
        return found
    groups = list((await session.scalars(select(ProductGroup))).all())
    offered = []
    for organization in found:
        for group in groups:
            if await _may_create(session, principal, group, organization.id) is not None:
                offered.append(organization)
                break
    return offered


async def _may_create(
    session: AsyncSession, principal: Principal, group: ProductGroup, organization_id: uuid.UUID
) -> GroupOffer | None:
    try:
        right = await acting.authorize(session, principal, Permission.create, group.id, organization_id)
    except Forbidden:
        return None
    left = None if right.grant is None else await quota.remaining_quota(session, right.grant.id)
    return GroupOffer(group=group, left=left)


async def group_offers(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> list[GroupOffer]:
    """The product groups the person may create licenses of for the organization, with the quota left."""
    offers = []
    for group in (await session.scalars(select(ProductGroup).order_by(ProductGroup.code))).all():
        offer = await _may_create(session, principal, group, organization_id)
        if offer is not None:
            offers.append(offer)
    return offers


async def chosen_organization(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> Organization:
    """The organization of the order: out of reach is NotFound, not administered Forbidden (the rights service)."""
    await reach.administered_path(session, principal, organization_id, doing="create licenses for it")
    return await reach.visible_organization(session, principal, organization_id)


async def chosen_group(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, code: str
) -> GroupOffer:
    group = await session.scalar(select(ProductGroup).where(ProductGroup.code == code))
    if group is None:
        raise Forbidden("no grant on this product group covers this organization")
    right = await acting.authorize(session, principal, Permission.create, group.id, organization_id)
    left = None if right.grant is None else await quota.remaining_quota(session, right.grant.id)
    return GroupOffer(group=group, left=left)


async def products_of(session: AsyncSession, group: ProductGroup) -> list[Product]:
    return list((await catalog.list_products(session, limit=200, cursor=None, group=group.code)).items)


async def chosen_product(session: AsyncSession, group: ProductGroup, code: str) -> Product:
    product = await catalog.get_product(session, code)
    if product.group_id != group.id:
        raise NotFound(f"no product with code {code!r} in product group {group.code!r}")
    return product


async def members(session: AsyncSession, principal: Principal, organization_id: uuid.UUID) -> list[User]:
    """Whom the tickets may be allocated to by name: the members the intake accepts for `allocation: user`."""
    query = intake.allocatable_users(principal, organization_id).order_by(User.name, User.email).limit(500)
    return list((await session.scalars(query)).all())


def nonce_of(form: FormData | None) -> str | None:
    value = None if form is None else form.get("nonce")
    return value if isinstance(value, str) and NONCE.fullmatch(value) else None
