"""The portal's catalogues agree: a message translated in several areas' files has one translation.

The catalogues of a language are merged (api.portal.i18n.catalog) and the first file's translation wins, so two
areas translating "Allocate to" differently would show a page the other area's words without either noticing.
"""

from __future__ import annotations

from collections import defaultdict

from babel.messages.pofile import read_po

from api.portal.i18n import LOCALES_DIR, SUPPORTED


def test_no_message_has_two_translations_in_one_language() -> None:
    for locale in SUPPORTED:
        translations: dict[str, dict[str, str]] = defaultdict(dict)
        for path in sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po")):
            with path.open("rb") as source:
                for message in read_po(source, locale=locale):
                    if message.id and message.string and isinstance(message.id, str):
                        translations[message.id][path.name] = str(message.string)
        disagreeing = {msgid: files for msgid, files in translations.items() if len(set(files.values())) > 1}
        assert not disagreeing, f"{locale}: messages translated differently by different files: {disagreeing}"
