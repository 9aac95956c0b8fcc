"""Languages: every portal message has a German translation, and a German-speaking person gets German pages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.portal import i18n, messages
from tessera.models import User
from tests.api.people import give_password
from tests.api.portal.browser_forms import sign_in_portal, submit
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"


def test_every_message_of_the_portal_has_a_german_translation() -> None:
    found = messages.extracted()
    assert "Sign in" in found  # the extraction sees the templates
    assert "Your profile is saved." in found  # and the Python code
    assert messages.missing("de") == {}


def test_one_message_has_one_translation_across_the_areas_files() -> None:
    from pathlib import Path

    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted((i18n.LOCALES_DIR / "de" / "LC_MESSAGES").glob("*.po")):
        with Path(path).open("rb") as source:
            for message in read_po(source, locale="de"):
                if not message.id or not message.string:
                    continue
                key, text = str(message.id), str(message.string)
                if key in seen and seen[key][1] != text:
                    clashes.append(f"{key!r}: {seen[key]} vs {(path.name, text)}")
                seen[key] = (path.name, text)
    assert clashes == [], "the same English text is translated differently:\n" + "\n".join(clashes)


def test_german_translations_keep_their_placeholders() -> None:
    for message in i18n.catalog("de"):
        if message.id and message.string and isinstance(message.id, str):
            assert sorted(_placeholders(message.id)) == sorted(_placeholders(str(message.string))), message.id


def _placeholders(text: str) -> list[str]:
    import re

    return re.findall(r"%\([a-z_]+\)s", text)


def test_dates_and_money_follow_the_locale() -> None:
    german, english = i18n.Formats("de", "Europe/Berlin"), i18n.Formats("en", "UTC")
    assert german.money(Decimal("1200.5"), "EUR") == "1.200,50\xa0€"
    assert english.money(Decimal("1200.5"), "EUR") == "€1,200.50"
    assert german.date(date(2027, 3, 1)) == "01.03.2027"
    assert english.date(date(2027, 3, 1)) == "Mar 1, 2027"
    assert german.instant(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "01.01.2027, 00:30:00"


def test_the_language_is_the_persons_then_the_browsers() -> None:
    assert i18n.choose("de-CH", "en") == "de"
    assert i18n.choose("fr", "de") == "de"
    assert i18n.choose(None, "fr") == "en"
    assert i18n.from_accept_language("fr-FR, de;q=0.8, en;q=0.5") == "de"
    assert i18n.from_accept_language("en;q=0, de;q=0.1") == "de"
    assert i18n.from_accept_language("garbage;q=x") is None


async def test_a_german_speaking_person_sees_german_pages(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    signed_out = await api.get("/signin", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="de">' in signed_out.text
    assert "Passwort vergessen?" in signed_out.text
    await give_password(sessions, ADMIN)
    async with sessions() as session:
        await session.execute(update(User).where(User.email == ADMIN).values(locale="de"))
        await session.commit()
    await sign_in_portal(api, ADMIN)
    page = await api.get("/account")
    assert "Mein Konto" in page.text
    assert "Abmelden" in page.text
    # Switching the profile to English switches the pages.
    saved = await submit(api, "/account", "/account/profile", name="Customer Admin", locale="en")
    assert saved.status_code == 303
    assert "My account" in (await api.get("/account")).text
    async with sessions() as session:
        assert (await session.scalar(select(User.locale).where(User.email == ADMIN))) == "en"
