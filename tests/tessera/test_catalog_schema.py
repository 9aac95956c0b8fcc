"""The catalog document without a database: prices, subscription terms, products and cross-entry checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tessera.catalog.loader import read_catalog
from tessera.catalog.schema import Alignment, CatalogFile, Price, ProductSpec, SubscriptionTerms
from tessera.catalog.service import catalog_problems
from tessera.errors import ConfigError, InvalidInput
from tessera.schema_base import validate_input
from tessera.settings import REPO_ROOT
from tessera.yamlsource import parse_yaml


def refusal(model: type[BaseModel], data: dict[str, Any]) -> tuple[str, str]:
    """(field, message) of the one error `data` gets."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return ".".join(map(str, errors[0]["loc"])), str(errors[0]["msg"]).removeprefix("Value error, ")


# --- Price ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0", "1200", "1200.00", "0.5", "99999999999999.9999"])
def test_price_amounts_are_decimal_strings(amount: str) -> None:
    assert Price(amount=amount, currency="EUR").amount == amount


@pytest.mark.parametrize("amount", [1200.0, 1200, 19.99])
def test_a_number_amount_is_refused_with_a_hint_to_quote_it(amount: float) -> None:
    field, message = refusal(Price, {"amount": amount, "currency": "EUR"})
    assert field == "amount"
    assert message == f"write the amount as a quoted decimal string, e.g. '1200.00' (got {amount!r})"


@pytest.mark.parametrize("amount", ["-1", "1.23456", "1,00", "1e3", "", "12.", "€12"])
def test_malformed_amounts_are_refused(amount: str) -> None:
    assert refusal(Price, {"amount": amount, "currency": "EUR"}) == (
        "amount",
        f"{amount!r} is not a non-negative decimal with at most 4 decimal places",
    )


@pytest.mark.parametrize("currency", ["XYZ", "eur", "EURO", ""])
def test_unknown_currencies_are_refused(currency: str) -> None:
    field, message = refusal(Price, {"amount": "1.00", "currency": currency})
    assert field == "currency"
    assert message.startswith(f"{currency!r} is not an ISO 4217 currency code known to Tessera")


def test_a_float_price_in_yaml_is_located() -> None:
    text = "product_groups: [{code: G, name: {en: G}}]\nproducts:\n  - code: P\n    group: G\n    name: {en: P}\n"
    text += "    kind: perpetual\n    price:\n      amount: 1200.50\n      currency: EUR\n"
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "catalog.yaml").validate(CatalogFile)
    (issue,) = caught.value.issues
    assert (issue.field, issue.line, issue.column) == ("products.0.price.amount", 8, 7)
    assert "quoted decimal string" in issue.message
    assert "1200.5" in issue.message


# --- SubscriptionTerms ------------------------------------------------------------------------------------------


def test_terms_default_to_a_yearly_anniversary_with_a_month_of_notice() -> None:
    terms = SubscriptionTerms()
    assert (terms.term, terms.alignment, terms.notice_period) == ("P1Y", Alignment.anniversary, "P1M")


def test_fiscal_year_needs_its_start() -> None:
    assert refusal(SubscriptionTerms, {"alignment": "fiscal_year"}) == (
        "",
        "fiscal_year alignment needs fiscal_year_start: {month: 4, day: 1}",
    )
    terms = SubscriptionTerms.model_validate({"alignment": "fiscal_year", "fiscal_year_start": {"month": 4, "day": 1}})
    assert terms.fiscal_year_start is not None
    assert terms.fiscal_year_start.month == 4


def test_fiscal_year_start_is_only_for_fiscal_years_and_days_1_to_28() -> None:
    start = {"month": 4, "day": 1}
    assert refusal(SubscriptionTerms, {"alignment": "calendar_year", "fiscal_year_start": start})[1] == (
        "fiscal_year_start is only used with alignment: fiscal_year"
    )
    field, _ = refusal(SubscriptionTerms, {"alignment": "fiscal_year", "fiscal_year_start": {"month": 2, "day": 29}})
    assert field == "fiscal_year_start.day"
    field, _ = refusal(SubscriptionTerms, {"alignment": "fiscal_year", "fiscal_year_start": {"month": 13, "day": 1}})
    assert field == "fiscal_year_start.month"


@pytest.mark.parametrize(
    ("term", "notice"),
    [
        ("P1Y", "P1Y"),
        ("P1Y", "P12M"),
        ("P1M", "P1M"),
        ("P30D", "P30D"),
        ("P1M", "P31D"),
        ("P1Y", "P13M"),
        # As long as some terms: a 365-day year, a February.
        ("P1Y", "P365D"),
        ("P1M", "P28D"),
        ("P3M", "P89D"),
    ],
)
def test_a_notice_period_as_long_as_the_term_is_an_error(term: str, notice: str) -> None:
    assert refusal(SubscriptionTerms, {"term": term, "notice_period": notice}) == (
        "",
        f"the notice period {notice} is as long as a term of {term} can be: some terms would leave no day to cancel",
    )


@pytest.mark.parametrize(
    ("term", "notice"),
    [("P1Y", "P11M"), ("P1Y", "P0D"), ("P3M", "P2M"), ("P365D", "P30D"), ("P1Y", "P364D"), ("P1M", "P27D")],
)
def test_a_shorter_notice_period_is_fine(term: str, notice: str) -> None:
    assert SubscriptionTerms.model_validate({"term": term, "notice_period": notice}).notice_period == notice


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"term": "P0D"}, "term", "a term is a whole number of years, months, weeks or days, e.g. P1Y"),
        ({"term": "PT48H"}, "term", "a term is a whole number of years, months, weeks or days, e.g. P1Y"),
        ({"term": "one year"}, "term", "'one year' is not an ISO 8601 duration"),
        ({"notice_period": "PT1H"}, "notice_period", "a notice period is a whole number of"),
        ({"cutoff_days": -1}, "cutoff_days", "greater than or equal to 0"),
        ({"cutoff_days": True}, "cutoff_days", "valid integer"),
        (
            {"alignment": "fiscal_year", "fiscal_year_start": {"month": True, "day": 1}},
            "fiscal_year_start.month",
            "integer",
        ),
        ({"first_term": "half"}, "first_term", "'prorate', 'free' or 'full'"),
        ({"renew": True}, "renew", "Extra inputs are not permitted"),
    ],
)
def test_malformed_terms_name_their_key(data: dict[str, Any], field: str, message: str) -> None:
    got_field, got_message = refusal(SubscriptionTerms, data)
    assert got_field == field
    assert message in got_message


# --- ProductSpec ---------------------------------------------------------------------------------------------


PRODUCT: dict[str, Any] = {"code": "P", "group": "G", "name": {"en": "P"}, "kind": "perpetual"}
YEARLY = {"term": "P1Y"}
PRICE = {"amount": "10.00", "currency": "EUR"}


def test_a_minimal_product_gets_the_documented_defaults() -> None:
    product = ProductSpec.model_validate(PRODUCT)
    assert product.max_activations == 1
    assert [kind.value for kind in product.container_kinds] == ["software"]
    assert product.fields == []
    assert product.modules == []


def test_only_subscription_products_have_terms_and_they_need_terms_and_a_price() -> None:
    assert refusal(ProductSpec, {**PRODUCT, "subscription": YEARLY}) == (
        "subscription",
        "only subscription products have subscription terms; this product is perpetual",
    )
    missing = "a subscription product needs `subscription` terms and a `price` per term"
    assert refusal(ProductSpec, {**PRODUCT, "kind": "subscription", "price": PRICE}) == ("", missing)
    assert refusal(ProductSpec, {**PRODUCT, "kind": "subscription", "subscription": YEARLY}) == ("", missing)
    ProductSpec.model_validate({**PRODUCT, "kind": "subscription", "subscription": YEARLY, "price": PRICE})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"container_kinds": ["software", "software"]}, "container_kinds"),
        ({"container_kinds": []}, "container_kinds"),
        ({"container_kinds": ["usb"]}, "container_kinds.0"),
        ({"max_activations": 0}, "max_activations"),
        ({"max_activations": True}, "max_activations"),
        ({"max_activations": "3"}, "max_activations"),
        ({"max_activations": 2.0}, "max_activations"),
        ({"kind": "forever"}, "kind"),
        ({"code": "has space"}, "code"),
        ({"code": 42}, "code"),
        ({"name": {}}, "name"),
        ({"name": {"en": "  "}}, "name"),
    ],
)
def test_malformed_products_name_their_key(changes: dict[str, Any], field: str) -> None:
    assert refusal(ProductSpec, {**PRODUCT, **changes})[0] == field


# --- checks across entries -------------------------------------------------------------------------------------


def test_catalog_problems_point_at_each_repeat_and_dangling_group() -> None:
    field = {"name": "f", "label": {"en": "F"}, "type": "int"}
    module = {"code": "M", "name": {"en": "M"}}
    catalog = CatalogFile.model_validate(
        {
            "customer_fields": [field, field],
            "product_groups": [{"code": "G", "name": {"en": "G"}}, {"code": "G", "name": {"en": "again"}}],
            "products": [
                {**PRODUCT, "fields": [field, field], "modules": [module, module]},
                {**PRODUCT, "group": "OLD"},
                {**PRODUCT, "code": "Q", "group": "NEW"},
            ],
        }
    )

    problems = catalog_problems(catalog, known_groups={"OLD"})

    assert problems == [
        (("product_groups", 1, "code"), "product group 'G' is defined twice"),
        (("products", 0, "fields", 1, "name"), "field name 'f' is used twice"),
        (("products", 0, "modules", 1, "code"), "module 'M' is defined twice"),
        (("products", 1, "code"), "product 'P' is defined twice"),
        (("products", 2, "group"), "unknown product group 'NEW' (known: G, OLD)"),
        (("customer_fields", 1, "name"), "field name 'f' is used twice"),
    ]


def test_the_shipped_catalog_is_valid() -> None:
    catalog = read_catalog(REPO_ROOT / "config" / "catalog.yaml")
    assert catalog.vendor is not None
    assert catalog.product_groups
    assert catalog.products
    assert {product.group for product in catalog.products} <= {group.code for group in catalog.product_groups}


def test_a_merged_product_reports_the_keys_that_were_sent() -> None:
    """`validate_input` (behind PATCH): one issue per key, no names of union members in the path."""
    field = {"name": "f", "label": {"en": "F"}, "type": "int", "default": [1, 2]}
    with pytest.raises(InvalidInput) as caught:
        validate_input(ProductSpec, {**PRODUCT, "fields": [field], "max_activations": 0})
    assert [(issue.field, issue.message) for issue in caught.value.issues] == [
        ("max_activations", "Input should be greater than or equal to 1"),
        ("fields.0.default", "Input should be a valid boolean, a valid integer, a valid string or a valid date"),
    ]


# --- expiry settings ------------------------------------------------------------------------------------------

DAYS = {"name": "test_length", "label": {"en": "Days"}, "type": "choice", "allowed": [7, 14]}
TEXT = {"name": "note", "label": {"en": "Note"}, "type": "string"}


def _product(kind: str, **extra: Any) -> dict[str, Any]:
    return {"code": "P", "group": "G", "name": {"en": "P"}, "kind": kind, "fields": [DAYS, TEXT], **extra}


def test_each_kind_stores_what_its_expiry_is_computed_from() -> None:
    trial = ProductSpec.model_validate(_product("trial", trial_days_field="test_length"))
    assert trial.expiry_settings() == {"trial_days_field": "test_length"}
    fixed_trial = ProductSpec.model_validate(_product("trial", duration="P30D"))
    assert fixed_trial.expiry_settings() == {"duration": "P30D"}
    assert ProductSpec.model_validate(_product("time_limited", duration="P1Y")).expiry_settings() == {"duration": "P1Y"}
    assert ProductSpec.model_validate(_product("perpetual")).expiry_settings() is None


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (_product("trial"), "", "a trial product needs its length: `trial_days_field`"),
        (_product("time_limited"), "", "a time_limited product needs `duration`"),
        (_product("trial", trial_days_field="days"), "trial_days_field", "no field 'days' among this product's"),
        (_product("trial", trial_days_field="note"), "trial_days_field", "must hold a number of days"),
        (_product("perpetual", trial_days_field="test_length"), "trial_days_field", "only trial products"),
        (_product("perpetual", duration="P1Y"), "duration", "only time_limited and trial products"),
        (_product("time_limited", duration="P0D"), "duration", "cannot run for zero time"),
        (_product("time_limited", duration="a year"), "duration", "is not an ISO 8601 duration"),
    ],
)
def test_bad_expiry_settings_name_their_key(data: dict[str, Any], field: str, message: str) -> None:
    where, text = refusal(ProductSpec, data)
    assert where == field
    assert message in text


def test_a_bad_expiry_setting_in_yaml_is_located() -> None:
    text = "product_groups: [{code: G, name: {en: G}}]\nproducts:\n  - code: P\n    group: G\n    name: {en: P}\n"
    text += "    kind: trial\n    trial_days_field: trial_days\n"
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "catalog.yaml").validate(CatalogFile)
    (issue,) = caught.value.issues
    assert (issue.file, issue.field, issue.line, issue.column) == ("catalog.yaml", "products.0.trial_days_field", 7, 5)
    assert "no field 'trial_days'" in issue.message


def test_the_shipped_catalog_gives_every_trial_and_time_limited_product_its_length() -> None:
    catalog = read_catalog(REPO_ROOT / "config" / "catalog.yaml")
    kinds = {product.kind.value: product.expiry_settings() for product in catalog.products}
    assert kinds["trial"] == {"trial_days_field": "trial_days"}
    assert kinds["time_limited"] == {"duration": "P1Y"}
