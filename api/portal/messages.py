"""The portal's messages as found in its code and templates, and which of them a catalogue lacks.

`python -m api.portal.messages de` lists the messages without a German translation (the test suite fails on
any), so a new page cannot ship half in English.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from api.portal import i18n

ROOT = Path(__file__).resolve().parent.parent.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "translate": (2,)}


def extracted() -> dict[str, list[str]]:
    """Every message id the portal uses, with where it is used (`file:line`)."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{line}")
    return found


def missing(locale: str) -> dict[str, list[str]]:
    have = {message.id for message in i18n.catalog(locale) if message.id and message.string}
    return {msgid: where for msgid, where in extracted().items() if msgid not in have}


def main() -> int:
    locale = sys.argv[1] if len(sys.argv) > 1 else "de"
    gaps = missing(locale)
    for msgid, where in sorted(gaps.items()):
        print(f"{where[0]}: {msgid!r}")  # noqa: T201
    return 1 if gaps else 0


if __name__ == "__main__":
    raise SystemExit(main())
