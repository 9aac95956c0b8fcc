"""A time zone whose local midnight falls at a chosen instant, so that day-long terms in it end then.

Subscription terms end at local midnight, and real zones put midnight only on the hour, half or quarter hour: a
test or benchmark that wants terms to end a few seconds from now writes a zone of its own. It is an ordinary TZif
file with one fixed UTC offset (to the second, as historical local mean times have), found through the standard
library's zone search path, so Tessera's code reads it like any IANA zone; nothing in Tessera is told about it.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
import uuid
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY_SECONDS = 86_400
ABBREVIATION = b"HERD"


def offset_for(midnight_at: datetime) -> int:
    """The UTC offset (seconds, within half a day of zero) that makes `midnight_at` local 00:00:00."""
    at = midnight_at.astimezone(UTC)
    if at.microsecond:
        raise ValueError("local midnight falls on a whole second")
    since_utc_midnight = at.hour * 3600 + at.minute * 60 + at.second
    offset = -since_utc_midnight % DAY_SECONDS
    return offset - DAY_SECONDS if offset > DAY_SECONDS // 2 else offset


def tzif(offset: int) -> bytes:
    """A version 2 TZif file without transitions: `offset` always, also after its data (the footer's rule)."""
    sign = "-" if offset > 0 else "+"  # POSIX counts hours west of Greenwich: UTC+5 is written -5
    hours, rest = divmod(abs(offset), 3600)
    rule = f"<{ABBREVIATION.decode()}>{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    chars = ABBREVIATION + b"\0"
    # isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt; then one local time type (utoff, isdst, abbrind)
    header = b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, 0, 1, len(chars))
    body = struct.pack(">lBB", offset, 0, 0) + chars
    return header + body + header + body + f"\n{rule}\n".encode()


@contextlib.contextmanager
def midnight_zone(midnight_at: datetime) -> Iterator[str]:
    """A zone name, usable while the block runs, whose local days begin at `midnight_at` (and 24 h apart)."""
    previous = zoneinfo.TZPATH
    with tempfile.TemporaryDirectory() as directory:
        name = f"Herd/M{uuid.uuid4().hex[:12]}"  # fresh per use: zoneinfo caches zones by name
        path = Path(directory) / name
        path.parent.mkdir(parents=True)
        path.write_bytes(tzif(offset_for(midnight_at)))
        zoneinfo.reset_tzpath(to=[directory, *previous])
        try:
            zone = zoneinfo.ZoneInfo(name)
            local = midnight_at.astimezone(zone)
            assert (local.hour, local.minute, local.second) == (0, 0, 0), local
            assert (midnight_at + timedelta(days=400)).astimezone(zone).time() == local.time()
            yield name
        finally:
            zoneinfo.reset_tzpath(to=previous)
