"""Catalog reads and writes. Services flush; the caller's unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from tessera.catalog.schema import CatalogFile, ModuleSpec, Price, ProductGroupSpec, ProductSpec
from tessera.currency import MINOR_UNITS
from tessera.errors import Conflict, FieldIssue, InvalidInput, NotFound
from tessera.fields import FieldSpec, unique_names
from tessera.models import CatalogSetting, Product, ProductGroup
from tessera.pagination import PageOf, after_text, page_from
from tessera.schema_base import validate_input

PathPart = str | int
Problem = tuple[tuple[PathPart, ...], str]


@dataclass
class LoadSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0

    def describe(self) -> str:
        if not self.created and not self.updated:
            return f"catalog unchanged ({self.unchanged} entries)"
        parts = []
        if self.created:
            parts.append(f"created {', '.join(self.created)}")
        if self.updated:
            parts.append(f"updated {', '.join(self.updated)}")
        return "; ".join(parts) + f"; {self.unchanged} unchanged"


# --- checks that span more than one entry ------------------------------------------------------------------


def catalog_problems(catalog: CatalogFile, known_groups: set[str]) -> list[Problem]:
    """Duplicate codes and dangling references, each with the path of the offending value."""
    problems: list[Problem] = []
    group_codes: set[str] = set()
    for index, group in enumerate(catalog.product_groups):
        if group.code in group_codes:
            problems.append((("product_groups", index, "code"), f"product group {group.code!r} is defined twice"))
        group_codes.add(group.code)
    product_codes: set[str] = set()
    for index, product in enumerate(catalog.products):
        if product.code in product_codes:
            problems.append((("products", index, "code"), f"product {product.code!r} is defined twice"))
        product_codes.add(product.code)
        if product.group not in group_codes | known_groups:
            choices = ", ".join(sorted(group_codes | known_groups)) or "none defined"
            problems.append(
                (("products", index, "group"), f"unknown product group {product.group!r} (known: {choices})")
            )
        problems += [(("products", index, *path), message) for path, message in product_problems(product)]
    for at, message in unique_names(catalog.customer_fields):
        problems.append((("customer_fields", at, "name"), message))
    return problems


def product_problems(product: ProductSpec) -> list[Problem]:
    problems: list[Problem] = [(("fields", at, "name"), message) for at, message in unique_names(product.fields)]
    seen: set[str] = set()
    for at, module in enumerate(product.modules):
        if module.code in seen:
            problems.append((("modules", at, "code"), f"module {module.code!r} is defined twice"))
        seen.add(module.code)
    return problems


# --- loading a whole catalog -------------------------------------------------------------------------------


async def group_codes(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(ProductGroup.code))).all())


async def apply_catalog(session: AsyncSession, catalog: CatalogFile) -> LoadSummary:
    """Create or update every group and product of `catalog`; entries not in it are left alone.

    The caller has checked `catalog_problems`; equal entries are not touched, so loading twice changes nothing.
    """
    summary = LoadSummary()
    groups = {g.code: g for g in (await session.scalars(select(ProductGroup))).all()}
    for spec in catalog.product_groups:
        group = groups.get(spec.code)
        if group is None:
            group = ProductGroup(code=spec.code, name=spec.name)
            session.add(group)
            groups[spec.code] = group
            summary.created.append(f"group {spec.code}")
        elif _assign(group, {"name": spec.name}):
            summary.updated.append(f"group {spec.code}")
        else:
            summary.unchanged += 1
    await session.flush()
    products = {p.code: p for p in (await session.scalars(select(Product))).all()}
    for product_spec in catalog.products:
        columns = product_columns(product_spec, groups[product_spec.group])
        product = products.get(product_spec.code)
        if product is None:
            session.add(Product(code=product_spec.code, **columns))
            summary.created.append(f"product {product_spec.code}")
        elif _assign(product, columns):
            summary.updated.append(f"product {product_spec.code}")
        else:
            summary.unchanged += 1
    customer_fields = [spec.model_dump(mode="json") for spec in catalog.customer_fields]
    setting = await session.get(CatalogSetting, "customer_fields")
    if setting is None:
        if customer_fields:
            session.add(CatalogSetting(key="customer_fields", value=customer_fields))
            summary.created.append("customer_fields")
    elif _assign(setting, {"value": customer_fields}):
        summary.updated.append("customer_fields")
    await session.flush()
    return summary


def _assign(row: Any, columns: dict[str, Any]) -> bool:
    """Set the columns that differ; report whether anything changed (so updated_at moves only then)."""
    changed = False
    for name, value in columns.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def product_columns(spec: ProductSpec, group: ProductGroup) -> dict[str, Any]:
    return {
        "group_id": group.id,
        "name": spec.name,
        "description": spec.description or {},
        "kind": spec.kind.value,
        "erp_material_no": spec.erp_material_no,
        "container_kinds": [kind.value for kind in spec.container_kinds],
        "max_activations": spec.max_activations,
        "price_amount": Decimal(spec.price.amount) if spec.price else None,
        "price_currency": spec.price.currency if spec.price else None,
        "subscription": spec.subscription.model_dump(mode="json") if spec.subscription else None,
        "fields": [f.model_dump(mode="json") for f in spec.fields],
        "modules": [m.model_dump(mode="json") for m in spec.modules],
        "expiry": spec.expiry_settings(),
    }


def product_spec(product: Product) -> ProductSpec:
    """The stored product as the document it was written as (the group must be loaded)."""
    price = None
    if product.price_amount is not None and product.price_currency is not None:
        price = Price(
            amount=format_amount(product.price_amount, product.price_currency),
            currency=product.price_currency,
        )
    return ProductSpec.model_validate(
        {
            "code": product.code,
            "group": product.group.code,
            "name": product.name,
            "description": product.description or None,
            "kind": product.kind,
            "erp_material_no": product.erp_material_no,
            "container_kinds": product.container_kinds,
            "max_activations": product.max_activations,
            "price": price,
            "subscription": product.subscription,
            "fields": [FieldSpec.model_validate(f) for f in product.fields],
            "modules": [ModuleSpec.model_validate(m) for m in product.modules],
            **(product.expiry or {}),
        }
    )


def format_amount(amount: Decimal, currency: str) -> str:
    """At least the currency's minor unit (1200 EUR -> '1200.00'), more only where the price has it."""
    minor = MINOR_UNITS.get(currency, 2)
    exponent = amount.normalize().as_tuple().exponent
    places = max(minor, -exponent if isinstance(exponent, int) else minor)
    return f"{amount:.{places}f}"


# --- API operations ----------------------------------------------------------------------------------------


async def list_groups(session: AsyncSession, *, limit: int, cursor: str | None) -> PageOf[ProductGroup]:
    query = select(ProductGroup).order_by(ProductGroup.code).limit(limit + 1)
    after = after_text(cursor, "product-groups")
    if after is not None:
        query = query.where(ProductGroup.code > after)
    return page_from(list((await session.scalars(query)).all()), limit, key=lambda g: g.code, scope="product-groups")


async def create_group(session: AsyncSession, spec: ProductGroupSpec) -> ProductGroup:
    if await session.scalar(select(ProductGroup.id).where(ProductGroup.code == spec.code)) is not None:
        raise Conflict(f"product group {spec.code!r} exists already", issues=[FieldIssue("code", "already used")])
    group = ProductGroup(code=spec.code, name=spec.name)
    session.add(group)
    await session.flush()
    return group


async def list_products(
    session: AsyncSession, *, limit: int, cursor: str | None, group: str | None = None
) -> PageOf[Product]:
    query = select(Product).options(joinedload(Product.group)).order_by(Product.code).limit(limit + 1)
    after = after_text(cursor, "products")
    if after is not None:
        query = query.where(Product.code > after)
    if group is not None:
        query = query.join(ProductGroup, Product.group_id == ProductGroup.id).where(ProductGroup.code == group)
    return page_from(list((await session.scalars(query)).all()), limit, key=lambda p: p.code, scope="products")


async def get_product(session: AsyncSession, code: str) -> Product:
    product = await session.scalar(select(Product).options(joinedload(Product.group)).where(Product.code == code))
    if product is None:
        raise NotFound(f"no product with code {code!r}")
    return product


async def _group_for(session: AsyncSession, code: str) -> ProductGroup:
    group = await session.scalar(select(ProductGroup).where(ProductGroup.code == code))
    if group is None:
        known = ", ".join(sorted(await group_codes(session))) or "none defined"
        raise InvalidInput(f"unknown product group {code!r}", issues=[FieldIssue("group", f"known: {known}")])
    return group


def _raise_problems(problems: list[Problem]) -> None:
    if problems:
        issues = [FieldIssue(".".join(map(str, path)), message) for path, message in problems]
        raise InvalidInput(issues[0].message, issues=issues)


async def create_product(session: AsyncSession, spec: ProductSpec) -> Product:
    _raise_problems(product_problems(spec))
    if await session.scalar(select(Product.id).where(Product.code == spec.code)) is not None:
        raise Conflict(f"product {spec.code!r} exists already", issues=[FieldIssue("code", "already used")])
    group = await _group_for(session, spec.group)
    product = Product(code=spec.code, **product_columns(spec, group))
    session.add(product)
    await session.flush()
    return await get_product(session, spec.code)


async def update_product(session: AsyncSession, code: str, changes: dict[str, Any]) -> Product:
    """Apply a partial document (`changes` holds only the keys sent); the result is validated as a whole."""
    product = await get_product(session, code)
    if "code" in changes and changes["code"] != code:
        raise InvalidInput("a product's code cannot change", issues=[FieldIssue("code", "cannot change")])
    merged = {**product_spec(product).model_dump(mode="json"), **changes}
    spec = validate_input(ProductSpec, merged)
    _raise_problems(product_problems(spec))
    group = product.group if spec.group == product.group.code else await _group_for(session, spec.group)
    _assign(product, product_columns(spec, group))
    await session.flush()
    session.expunge(product)
    return await get_product(session, code)
