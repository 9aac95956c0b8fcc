"""Custom search attributes every Tessera workflow sets: ids and codes only, never personal data."""

from __future__ import annotations

SEARCH_ATTRIBUTES: dict[str, str] = {
    "TesseraCustomer": "Keyword",
    "TesseraProduct": "Keyword",
    "TesseraStatus": "Keyword",
    "TesseraExpiry": "Datetime",
    "TesseraReseller": "Keyword",
}
"""Name -> Temporal search attribute type, as `temporal server start-dev --search-attribute` expects it."""
