"""Catalog bodies: the create shapes are the catalog.yaml shapes, so the file and the API never drift."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from tessera.catalog.schema import (
    ContainerKind,
    ModuleSpec,
    Price,
    ProductGroupSpec,
    ProductSpec,
    SubscriptionTerms,
)
from tessera.fields import FieldSpec
from tessera.models import ProductKind
from tessera.schema_base import Code, IsoDurationText, LocalizedText, StrictModel


class ProductGroupCreate(ProductGroupSpec):
    pass


class ProductGroupRead(ProductGroupSpec):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class ProductCreate(ProductSpec):
    pass


class ProductRead(ProductSpec):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class ProductUpdate(StrictModel):
    """Only the keys sent change; the code is the product's identity and cannot change."""

    group: Code | None = None
    name: LocalizedText | None = None
    description: LocalizedText | None = None
    kind: ProductKind | None = None
    erp_material_no: str | None = Field(default=None, max_length=64)
    container_kinds: list[ContainerKind] | None = None
    max_activations: int | None = Field(default=None, ge=1, le=100_000)
    price: Price | None = None
    subscription: SubscriptionTerms | None = None
    fields: list[FieldSpec] | None = None
    modules: list[ModuleSpec] | None = None
    trial_days_field: str | None = None
    duration: IsoDurationText | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)
