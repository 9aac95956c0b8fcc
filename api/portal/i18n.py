"""Languages of the portal: gettext catalogues read with Babel, and dates and money formatted per locale.

Catalogues are the `.po` files under `api/locales/<locale>/LC_MESSAGES/` (one file per area of the portal, all
merged), compiled in memory at first use, so no compiled `.mo` file is kept in the repository. English is the
source language: its messages are the msgids themselves.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
SUPPORTED = ("en", "de")
DEFAULT = "en"


def supported(locale: str | None) -> str | None:
    """The portal language for a stored locale such as `de-CH` or `de_DE`, or None when we have none for it."""
    if not locale:
        return None
    language = locale.replace("-", "_").split("_", 1)[0].lower()
    return language if language in SUPPORTED else None


def choose(*candidates: str | None) -> str:
    """The first candidate the portal speaks (the user's locale, then the organization's), else English."""
    for candidate in candidates:
        found = supported(candidate)
        if found:
            return found
    return DEFAULT


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an `Accept-Language` header (for pages before anyone signed in)."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        found = supported(tag.strip())
        if found and quality > 0:
            weighted.append((-quality, position, found))
    return min(weighted)[2] if weighted else None


def catalog(locale: str) -> Catalog:
    """Every message of a locale's `.po` files, merged into one catalogue."""
    merged = Catalog(locale=locale)
    for path in sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as source:
            for message in read_po(source, locale=locale):
                if message.id and message.string:
                    merged.add(message.id, message.string)
    return merged


@cache
def translations(locale: str) -> NullTranslations:
    if locale == DEFAULT:
        return NullTranslations()
    compiled = io.BytesIO()
    write_mo(compiled, catalog(locale))
    compiled.seek(0)
    return Translations(compiled)


def localized(value: object, locale: str) -> str:
    """A multilingual catalog text (`{"en": ..., "de": ...}`) in the locale, else English, else any; or as is."""
    if isinstance(value, dict):
        for key in (locale, DEFAULT):
            if value.get(key):
                return str(value[key])
        return str(next(iter(value.values()), ""))
    return "" if value is None else str(value)


class Formats:
    """Dates, instants and money for one locale and time zone."""

    def __init__(self, locale: str, timezone: str) -> None:
        try:
            self.locale = Locale.parse(locale)
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse(DEFAULT)
        try:
            self.zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            self.zone = ZoneInfo("UTC")

    def date(self, value: date | None) -> str:
        return "" if value is None else format_date(value, format="medium", locale=self.locale)

    def instant(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value.astimezone(self.zone), format="medium", locale=self.locale)

    def money(self, amount: Decimal | str | None, currency: str | None) -> str:
        if amount is None or not currency:
            return ""
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)
