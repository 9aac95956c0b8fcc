"""What an order asks for, as a caller writes it (the API body is this model)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool, StrictInt, StringConstraints

from tessera.fields import MAX_FIELD_VALUES, MAX_TEXT_LENGTH
from tessera.models import Visibility
from tessera.schema_base import Code, StrictModel

MAX_QUANTITY = 10_000
"""One order creates at most this many licenses; larger volumes are several orders (or a grant without limit)."""

FieldInput = StrictBool | StrictInt | Annotated[str, StringConstraints(strict=True, max_length=MAX_TEXT_LENGTH)]
"""A product field value as JSON carries it: dates are `YYYY-MM-DD` strings."""
FieldName = Annotated[str, StringConstraints(max_length=64)]


def _date_text(value: Any) -> Any:
    # Lax parsing would read a number as seconds since 1970: a date is sent as `YYYY-MM-DD` text only.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("a date is written YYYY-MM-DD")
    return date.fromisoformat(value)


IsoDate = Annotated[date, BeforeValidator(_date_text)]
"""A calendar date as JSON carries it: `YYYY-MM-DD` text."""


class Allocation(StrEnum):
    requester = "requester"
    organization = "organization"
    user = "user"


class OrderRequest(StrictModel):
    """Licenses for one organization: product, field values, modules, quantity, allocation and visibility."""

    organization_id: uuid.UUID = Field(description="The organization the licenses are for.")
    product: Code = Field(description="Product code, e.g. PRO-CAD.")
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True, description="Licenses (and tickets) to create.")
    fields: dict[FieldName, FieldInput] = Field(
        default_factory=dict,
        max_length=MAX_FIELD_VALUES,
        description="Product field values by name; omitted fields take their defaults. Strings: at most "
        f"{MAX_TEXT_LENGTH} characters (or the field's max_length).",
    )
    modules: list[Code] | None = Field(
        default=None, description="Module codes to switch on; omitted: the product's default modules."
    )
    allocation: Allocation = Field(
        default=Allocation.requester,
        description="Who gets the tickets: the requester (a service account's key: its organization), the "
        "organization, or the user named in `user_id`.",
    )
    user_id: uuid.UUID | None = Field(
        default=None, description="With `allocation: user`: a member of the organization."
    )
    visibility: Visibility = Field(default=Visibility.all_members, description="Who in the organization sees tickets.")
    external_ref: str | None = Field(
        default=None, min_length=1, max_length=200, description="ERP order and line; a known one returns its order."
    )
    subscription_start: IsoDate | None = Field(
        default=None,
        description="Subscription products, vendor administrators only: take over a subscription that began on "
        "this day in another system. Its earlier terms are recorded as imported and it starts at the term running "
        "now; not in the future.",
    )

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the request: what `Idempotency-Key` replays are compared by."""
        document = self.model_dump(mode="json")
        if document["subscription_start"] is None:
            # Left out when not given, so that orders sent before take-overs existed keep their fingerprints.
            del document["subscription_start"]
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
