"""The cursor codec: what it writes it reads back; anything else is refused as `query.cursor`, never a crash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.errors import InvalidInput
from tessera.pagination import CursorKey, after_id, after_instant, after_text, encode_cursor

instants = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
keys = st.one_of(st.text(max_size=300), st.uuids(), st.tuples(instants, st.uuids()))


@given(keys)
def test_every_key_comes_back_unchanged(key: CursorKey) -> None:
    cursor = encode_cursor(key)
    if isinstance(key, str):
        assert after_text(cursor) == key
    elif isinstance(key, uuid.UUID):
        assert after_id(cursor) == key
    else:
        back = after_instant(cursor)
        assert back == key
        assert back is not None
        assert back[0].tzinfo is not None


@given(st.text(max_size=200))
def test_anything_else_is_refused_as_query_cursor(text: str) -> None:
    for decode in (after_text, after_id, after_instant):
        issues = []
        try:
            decode(text)
        except InvalidInput as refused:
            issues = refused.issues
        assert all(issue.field == "query.cursor" for issue in issues)


def test_a_cursor_of_one_kind_is_refused_by_another() -> None:
    cursor = encode_cursor(uuid.uuid4())
    with pytest.raises(InvalidInput):
        after_instant(cursor)
    with pytest.raises(InvalidInput):
        after_text(cursor)


def test_second_spellings_are_refused() -> None:
    key = uuid.uuid4()
    cursor = encode_cursor(key)
    with pytest.raises(InvalidInput):
        after_id(cursor + "==")
    upper = encode_cursor(str(key).upper())  # a text cursor re-tagged would not pass either
    with pytest.raises(InvalidInput):
        after_id(upper)


def test_naive_instants_are_never_written() -> None:
    with pytest.raises(ValueError, match="offset"):
        encode_cursor((datetime(2026, 1, 1), uuid.uuid4()))  # noqa: DTZ001
