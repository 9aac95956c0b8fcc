"""What a condition (`when:`) can see: five roots, each with a declared set of fields.

These models are the single source of truth twice over: the load-time checker derives each root's CEL type from
them (so `order.qty` is an error in the file, not at 3 a.m. in a workflow), and the workflow interpreter builds
a `ConditionContext` from them to evaluate the condition. Ids are strings (UUIDs as text); dates are ISO
`YYYY-MM-DD` strings, which compare correctly as text.
"""

from __future__ import annotations

from pydantic import Field

from tessera.schema_base import StrictModel

FactValue = bool | int | str | None
"""A product or customer field value as a condition sees it (dates as ISO strings)."""


class OrderFacts(StrictModel):
    id: str
    quantity: int = Field(description="Number of licenses ordered.")
    fields: dict[str, FactValue] = Field(default_factory=dict, description="Product field values by name.")
    modules: list[str] = Field(default_factory=list, description="Codes of the modules switched on.")
    external_ref: str = Field(default="", description="ERP order reference; empty when none.")
    allocation: str = Field(default="requester", description="What the order asked: requester, organization, user.")
    visibility: str = Field(default="all_members", description="What the order asked: all_members, admins_only.")


class ProductFacts(StrictModel):
    code: str
    group: str = Field(description="Code of the product group.")
    kind: str = Field(description="perpetual, time_limited, trial or subscription.")
    container_kinds: list[str] = Field(default_factory=list)
    max_activations: int = 1
    erp_material_no: str = ""


class OrganizationFacts(StrictModel):
    id: str
    kind: str = Field(description="vendor, reseller, customer or group.")
    country: str = Field(default="", description="ISO 3166 code; empty when unknown.")
    erp_customer_no: str = ""
    ancestor_ids: list[str] = Field(default_factory=list, description="Parent first, up to the vendor.")
    fields: dict[str, FactValue] = Field(default_factory=dict, description="Customer field values by name.")


class RequesterFacts(StrictModel):
    id: str
    email: str = Field(default="", description="Empty for a service account's key.")
    kind: str = Field(description="user or service_account.")


class SubscriptionFacts(StrictModel):
    id: str
    status: str = Field(description="pending, active, non_renewing, expired or revoked.")
    term_no: int = Field(description="1 for the first term.")
    quantity: int


class ConditionContext(StrictModel):
    """The values a condition is evaluated against; a root a process does not have stays None."""

    order: OrderFacts | None = None
    product: ProductFacts | None = None
    organization: OrganizationFacts | None = None
    requester: RequesterFacts | None = None
    subscription: SubscriptionFacts | None = None


ROOT_MODELS: dict[str, type[StrictModel]] = {
    "order": OrderFacts,
    "product": ProductFacts,
    "organization": OrganizationFacts,
    "requester": RequesterFacts,
    "subscription": SubscriptionFacts,
}
