"""Typed keys for Tessera's custom search attributes."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from tessera.search_attributes import SEARCH_ATTRIBUTES

CUSTOMER = SearchAttributeKey.for_keyword("TesseraCustomer")
PRODUCT = SearchAttributeKey.for_keyword("TesseraProduct")
STATUS = SearchAttributeKey.for_keyword("TesseraStatus")
EXPIRY = SearchAttributeKey.for_datetime("TesseraExpiry")
RESELLER = SearchAttributeKey.for_keyword("TesseraReseller")

ALL_KEYS: list[SearchAttributeKey] = [CUSTOMER, PRODUCT, STATUS, EXPIRY, RESELLER]  # type: ignore[type-arg]
assert {key.name for key in ALL_KEYS} == set(SEARCH_ATTRIBUTES), "keys and names must list the same attributes"
