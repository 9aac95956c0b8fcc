"""Opaque cursors for keyset pagination: `limit` ≤ 200, `next_cursor` continues after the last item."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tessera.errors import FieldIssue, InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

T = TypeVar("T")


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if not isinstance(after, str):
            raise TypeError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInput(
            "the cursor is not one this API returned",
            issues=[FieldIssue("cursor", "use the next_cursor of the previous page unchanged")],
        ) from None


def page_from(rows: list[T], limit: int, key: Callable[[T], str]) -> PageOf[T]:
    """Build a page from up to `limit + 1` rows; the extra row only says that more exist."""
    if len(rows) > limit:
        items = rows[:limit]
        return PageOf(items=items, next_cursor=encode_cursor(key(items[-1])))
    return PageOf(items=rows, next_cursor=None)
