"""Which language a message is written in: the recipient's locale, else the organization's, else English.

Translations live in `<templates>/<locale>/<name>` beside the English `<templates>/<name>`. A locale tag matches
its own folder first, then its language's (`de-AT` uses `de/`), compared without regard to case; a locale with
no translation of a template gets the English one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

DEFAULT_LOCALE = "en"
"""The language of the templates directly under `templates/`."""
_FOLDER = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def is_locale_folder(name: str) -> bool:
    return bool(_FOLDER.match(name))


def choose(tag: str | None, available: Iterable[str]) -> str | None:
    """The translation folder to use for `tag` among `available`, or None for the English template."""
    if not tag:
        return None
    folders = {folder.lower(): folder for folder in available}
    parts = tag.replace("_", "-").lower().split("-")
    for length in range(len(parts), 0, -1):
        found = folders.get("-".join(parts[:length]))
        if found is not None:
            return found
    return None


def recipient_locale(user_locale: str | None, organization_locale: str | None) -> str:
    return user_locale or organization_locale or DEFAULT_LOCALE


def translated_name(locale: str, name: str) -> str:
    return f"{locale}/{name}"


def split_translated(key: str) -> tuple[str | None, str]:
    """`de/x.txt.j2` -> ("de", "x.txt.j2"); `x.txt.j2` -> (None, "x.txt.j2")."""
    folder, slash, name = key.partition("/")
    return (folder, name) if slash and is_locale_folder(folder) and "/" not in name else (None, key)


def translations(templates_dir: Path, name: str) -> dict[str, Path]:
    """Every translation of one template on disk, by locale folder."""
    try:
        folders = [entry for entry in templates_dir.iterdir() if entry.is_dir() and is_locale_folder(entry.name)]
    except OSError:
        return {}
    return {folder.name: folder / name for folder in sorted(folders) if (folder / name).is_file()}
