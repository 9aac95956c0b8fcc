"""The catalog document (`config/catalog.yaml`) and the product shape the API accepts."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tessera.currency import check_currency
from tessera.durations import parse_duration
from tessera.fields import FieldSpec, FieldType
from tessera.models import OrganizationKind, ProductKind
from tessera.schema_base import Code, IsoDurationText, LocalizedText, StrictModel
from tessera.subscriptions.calendar import notice_fills_a_term
from tessera.timezones import check_timezone

_DECIMAL = re.compile(r"^\d{1,14}(\.\d{1,4})?$")


class ContainerKind(StrEnum):
    software = "software"
    dongle = "dongle"
    cloud = "cloud"


class Price(StrictModel):
    amount: str = Field(description="Decimal string, e.g. '1200.00' (quoted: a YAML float would lose cents).")
    currency: str = Field(description="ISO 4217 code, e.g. EUR.")

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"write the amount as a quoted decimal string, e.g. '1200.00' (got {value!r})")
        if not _DECIMAL.match(value):
            raise ValueError(f"{value!r} is not a non-negative decimal with at most 4 decimal places")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return check_currency(value)


class Alignment(StrEnum):
    anniversary = "anniversary"
    calendar_year = "calendar_year"
    fiscal_year = "fiscal_year"


class AnniversaryAnchor(StrEnum):
    purchase = "purchase"
    first_activation = "first_activation"


class FirstTerm(StrEnum):
    prorate = "prorate"
    free = "free"
    full = "full"


class MonthDay(StrictModel):
    # strict: YAML `true` would otherwise pass as 1.
    month: int = Field(ge=1, le=12, strict=True)
    day: int = Field(ge=1, le=28, strict=True, description="1-28, so that every year has it.")


class SubscriptionTerms(StrictModel):
    """How a subscription product renews: term, alignment, first term and notice period."""

    term: IsoDurationText = "P1Y"
    alignment: Alignment = Alignment.anniversary
    anchor: AnniversaryAnchor = AnniversaryAnchor.purchase
    fiscal_year_start: MonthDay | None = None
    first_term: FirstTerm = FirstTerm.prorate
    cutoff_days: int = Field(default=0, ge=0, le=366, strict=True)
    notice_period: IsoDurationText = "P1M"
    managed_by: Literal["tessera", "erp"] = Field(
        default="tessera",
        description="tessera: a workflow renews it each term; erp: the ERP extends or ends it, term by term",
    )

    @field_validator("term")
    @classmethod
    def _positive_term(cls, value: str) -> str:
        duration = parse_duration(value)
        if duration.is_zero or duration.seconds:
            raise ValueError("a term is a whole number of years, months, weeks or days, e.g. P1Y")
        return value

    @field_validator("notice_period")
    @classmethod
    def _whole_days(cls, value: str) -> str:
        if parse_duration(value).seconds:
            raise ValueError("a notice period is a whole number of years, months, weeks or days, e.g. P1M")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SubscriptionTerms:
        if self.alignment == Alignment.fiscal_year and self.fiscal_year_start is None:
            raise ValueError("fiscal_year alignment needs fiscal_year_start: {month: 4, day: 1}")
        if self.alignment != Alignment.fiscal_year and self.fiscal_year_start is not None:
            raise ValueError("fiscal_year_start is only used with alignment: fiscal_year")
        term, notice = parse_duration(self.term), parse_duration(self.notice_period)
        if notice_fills_a_term(term, notice):
            raise ValueError(
                f"the notice period {self.notice_period} is as long as a term of {self.term} can be: "
                "some terms would leave no day to cancel"
            )
        return self


class ModuleSpec(StrictModel):
    code: Code
    name: LocalizedText
    default: bool = False


class ProductGroupSpec(StrictModel):
    code: Code
    name: LocalizedText


class ProductSpec(StrictModel):
    """A product as written in catalog.yaml and as created through the API."""

    code: Code
    group: Code = Field(description="Code of the product group.")
    name: LocalizedText
    description: LocalizedText | None = None
    kind: ProductKind
    erp_material_no: str | None = Field(default=None, max_length=64)
    container_kinds: list[ContainerKind] = Field(default_factory=lambda: [ContainerKind.software], min_length=1)
    max_activations: int = Field(default=1, ge=1, le=100_000, strict=True)
    price: Price | None = None
    subscription: SubscriptionTerms | None = None
    fields: list[FieldSpec] = Field(default_factory=list)
    modules: list[ModuleSpec] = Field(default_factory=list)
    # Declared after kind and fields, so their validators see both.
    trial_days_field: str | None = Field(
        default=None, description="trial: the field (int, or choice of ints) whose value is the trial's days."
    )
    duration: IsoDurationText | None = Field(
        default=None, description="time_limited (or a trial of fixed length): how long a license runs, e.g. P1Y."
    )

    @field_validator("trial_days_field")
    @classmethod
    def _trial_days_field(cls, name: str | None, info: ValidationInfo) -> str | None:
        kind, fields = info.data.get("kind"), info.data.get("fields")
        if name is None or kind is None or fields is None:
            return name
        if kind != ProductKind.trial:
            raise ValueError(f"only trial products take their length from a field; this product is {kind}")
        spec = next((field for field in fields if field.name == name), None)
        if spec is None:
            known = ", ".join(field.name for field in fields) or "none"
            raise ValueError(f"no field {name!r} among this product's fields (known: {known})")
        whole_days = spec.type == FieldType.int or (
            spec.type == FieldType.choice
            and all(isinstance(value, int) and not isinstance(value, bool) for value in spec.allowed or [])
        )
        if not whole_days:
            raise ValueError(f"the field {name!r} must hold a number of days: type int, or a choice of whole numbers")
        return name

    @field_validator("duration")
    @classmethod
    def _duration(cls, duration: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if duration is None or kind is None:
            return duration
        if kind not in (ProductKind.trial, ProductKind.time_limited):
            raise ValueError(f"only time_limited and trial products run for a duration; this product is {kind}")
        if parse_duration(duration).is_zero:
            raise ValueError("a license cannot run for zero time: give e.g. P1Y or P30D")
        return duration

    def expiry_settings(self) -> dict[str, str] | None:
        """What the license's technical expiry is computed from (stored with the product)."""
        settings = {"trial_days_field": self.trial_days_field, "duration": self.duration}
        kept = {key: value for key, value in settings.items() if value is not None}
        return kept or None

    @field_validator("container_kinds")
    @classmethod
    def _no_repeats(cls, kinds: list[ContainerKind]) -> list[ContainerKind]:
        if len(set(kinds)) != len(kinds):
            raise ValueError("container kinds must not repeat")
        return kinds

    @field_validator("subscription")
    @classmethod
    def _only_for_subscriptions(cls, terms: SubscriptionTerms | None, info: ValidationInfo) -> SubscriptionTerms | None:
        kind = info.data.get("kind")
        if terms is not None and kind is not None and kind != ProductKind.subscription:
            raise ValueError(f"only subscription products have subscription terms; this product is {kind}")
        return terms

    @model_validator(mode="after")
    def _subscription_needs_terms(self) -> ProductSpec:
        if self.kind == ProductKind.subscription and (self.subscription is None or self.price is None):
            raise ValueError("a subscription product needs `subscription` terms and a `price` per term")
        if self.kind == ProductKind.trial and self.trial_days_field is None and self.duration is None:
            raise ValueError(
                "a trial product needs its length: `trial_days_field` naming the field with the days "
                "(e.g. trial_days), or a fixed `duration` (e.g. P30D)"
            )
        if self.kind == ProductKind.time_limited and self.duration is None:
            raise ValueError("a time_limited product needs `duration`: how long a license runs, e.g. P1Y")
        return self


class VendorSpec(StrictModel):
    """The organization that runs this deployment; bootstrapped once."""

    name: str = Field(min_length=1, max_length=200)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    timezone: str = "UTC"
    locale: str = "en"
    admin_email: str = Field(default="admin@vendor.example", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    admin_name: str = "Vendor administrator"
    kind: OrganizationKind = OrganizationKind.vendor

    @field_validator("kind")
    @classmethod
    def _vendor(cls, kind: OrganizationKind) -> OrganizationKind:
        if kind != OrganizationKind.vendor:
            raise ValueError("the deployment's own organization is of kind vendor")
        return kind

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        return check_timezone(zone)


class CatalogFile(StrictModel):
    """The whole of `config/catalog.yaml`."""

    vendor: VendorSpec | None = None
    customer_fields: list[FieldSpec] = Field(default_factory=list)
    product_groups: list[ProductGroupSpec] = Field(default_factory=list)
    products: list[ProductSpec] = Field(default_factory=list)
