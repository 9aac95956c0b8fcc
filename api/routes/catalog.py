"""Product groups and products: readable by every caller, written by vendor administrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import CatalogReader, CatalogWriter, Cursor, Limit, Session
from api.openapi import problems
from api.schemas.catalog import (
    ProductCreate,
    ProductGroupCreate,
    ProductGroupRead,
    ProductRead,
    ProductUpdate,
)
from api.schemas.common import Page
from tessera.catalog import service
from tessera.models import Product

router = APIRouter(tags=["catalog"])


def _product_read(product: Product) -> ProductRead:
    spec = service.product_spec(product)
    return ProductRead(**spec.model_dump(), id=product.id, created_at=product.created_at, updated_at=product.updated_at)


@router.get("/product-groups", response_model=Page[ProductGroupRead])
async def list_product_groups(
    session: Session, _caller: CatalogReader, limit: Limit = 50, cursor: Cursor = None
) -> Page[ProductGroupRead]:
    """List product groups (the unit rights are granted on), ordered by code."""
    page = await service.list_groups(session, limit=limit, cursor=cursor)
    return Page(
        items=[ProductGroupRead.model_validate(g, from_attributes=True) for g in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/product-groups",
    response_model=ProductGroupRead,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, s409="A product group with this code exists."),
)
async def create_product_group(body: ProductGroupCreate, session: Session, _admin: CatalogWriter) -> ProductGroupRead:
    """Create a product group (vendor administrators only)."""
    group = await service.create_group(session, body)
    return ProductGroupRead.model_validate(group, from_attributes=True)


@router.get("/products", response_model=Page[ProductRead])
async def list_products(
    session: Session,
    _caller: CatalogReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    group: Annotated[str | None, Query(description="Only products of this product group code.")] = None,
) -> Page[ProductRead]:
    """List products with their fields, modules, prices and subscription terms, ordered by code."""
    page = await service.list_products(session, limit=limit, cursor=cursor, group=group)
    return Page(items=[_product_read(p) for p in page.items], next_cursor=page.next_cursor)


@router.post(
    "/products",
    response_model=ProductRead,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, s409="A product with this code exists."),
)
async def create_product(body: ProductCreate, session: Session, _admin: CatalogWriter) -> ProductRead:
    """Create a product (vendor administrators only); validated exactly like catalog.yaml."""
    return _product_read(await service.create_product(session, body))


@router.get("/products/{code}", response_model=ProductRead)
async def get_product(code: str, session: Session, _caller: CatalogReader) -> ProductRead:
    """Show one product by its code."""
    return _product_read(await service.get_product(session, code))


@router.patch("/products/{code}", response_model=ProductRead)
async def update_product(code: str, body: ProductUpdate, session: Session, _admin: CatalogWriter) -> ProductRead:
    """Change some keys of a product (vendor administrators only); the result must be a valid product."""
    return _product_read(await service.update_product(session, code, body.changes()))
