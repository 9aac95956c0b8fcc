"""Opaque cursors for keyset pagination: `limit` ≤ 200, `next_cursor` continues after the last item.

One codec for every list. A cursor is the base64url of a small JSON array: a tag naming the kind of key and
the list it belongs to, then the key's parts as text, so one list refuses another's cursor. Decoding accepts
only what `encode_cursor` would produce for that kind of key and list, byte for byte (it re-encodes what it
read and compares), so a cursor that was edited, truncated, nested, padded, or carries a timestamp without
its offset is refused as `query.cursor` instead of reaching a query. Cursors are not signed: one written by
hand is only a position in a list the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from tessera.errors import FieldIssue, InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_CURSOR_LENGTH = 4096
"""Longer than any cursor this codec writes (the longest key is an e-mail address); checked before decoding."""
CURSOR_FIELD = "query.cursor"

T = TypeVar("T")

CursorKey = str | uuid.UUID | tuple[datetime, uuid.UUID]
"""What a list is ordered by: a text key (codes, e-mails), an id, or (created_at, id) for newest-first lists."""

_TEXT, _ID, _INSTANT_ID = "t", "i", "ti"


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _tag(kind: str, scope: str) -> str:
    return f"{kind}:{scope}" if scope else kind


def _parts(key: CursorKey, scope: str) -> list[str]:
    if isinstance(key, str):
        return [_tag(_TEXT, scope), key]
    if isinstance(key, uuid.UUID):
        return [_tag(_ID, scope), str(key)]
    at, last = key
    if at.tzinfo is None:
        raise ValueError("cursor instants carry their offset")
    return [_tag(_INSTANT_ID, scope), at.astimezone(UTC).isoformat(), str(last)]


def _encode_parts(parts: list[str]) -> str:
    text = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def encode_cursor(key: CursorKey, scope: str = "") -> str:
    """The cursor continuing after `key` in the list named `scope` (e.g. "orders")."""
    return _encode_parts(_parts(key, scope))


def _refuse() -> InvalidInput:
    return InvalidInput(
        "the cursor is not one this API returned",
        issues=[FieldIssue(CURSOR_FIELD, "use the next_cursor of the previous page unchanged")],
    )


def _read_parts(cursor: str, tag: str, count: int) -> list[str]:
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise _refuse()
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        parts = json.loads(raw.decode())
    except (ValueError, binascii.Error, RecursionError):
        raise _refuse() from None
    if (
        not isinstance(parts, list)
        or len(parts) != count
        or parts[0] != tag
        or not all(isinstance(part, str) for part in parts)
    ):
        raise _refuse()
    return parts


def _checked(cursor: str, key: CursorKey, scope: str) -> None:
    # Only the exact text we would have written: no second spelling of the same key is accepted.
    if encode_cursor(key, scope) != cursor:
        raise _refuse()


def after_text(cursor: str | None, scope: str = "") -> str | None:
    """The text key a cursor of list `scope` continues after (lists ordered by code or e-mail)."""
    if cursor is None:
        return None
    key = _read_parts(cursor, _tag(_TEXT, scope), 2)[1]
    _checked(cursor, key, scope)
    return key


def after_id(cursor: str | None, scope: str = "") -> uuid.UUID | None:
    """The id a cursor of list `scope` continues after (lists ordered by id)."""
    if cursor is None:
        return None
    try:
        key = uuid.UUID(_read_parts(cursor, _tag(_ID, scope), 2)[1])
    except ValueError:
        raise _refuse() from None
    _checked(cursor, key, scope)
    return key


def after_instant(cursor: str | None, scope: str = "") -> tuple[datetime, uuid.UUID] | None:
    """The (created_at, id) a newest-first cursor of list `scope` continues after; instants are UTC-aware."""
    if cursor is None:
        return None
    parts = _read_parts(cursor, _tag(_INSTANT_ID, scope), 3)
    try:
        key = (datetime.fromisoformat(parts[1]), uuid.UUID(parts[2]))
        _checked(cursor, key, scope)
    except ValueError:
        raise _refuse() from None
    return key


def page_from(rows: list[T], limit: int, key: Callable[[T], CursorKey], scope: str = "") -> PageOf[T]:
    """Build a page of list `scope` from up to `limit + 1` rows; the extra row only says that more exist."""
    if len(rows) > limit:
        items = rows[:limit]
        return PageOf(items=items, next_cursor=encode_cursor(key(items[-1]), scope))
    return PageOf(items=rows, next_cursor=None)
