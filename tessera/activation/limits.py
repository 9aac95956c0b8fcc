"""Limits on failed look-ups of bearer credentials (ticket codes, activation secrets), per client and overall.

One `FailureLimits` per process hands out limiters by name (`activation`, and whatever else looks up a
credential). A limiter is asked before a look-up (`check`) and told of a failure after one (`failed`); only
failures count, so a device refreshing as often as it likes is never limited. Counts live in memory, or in
Redis when `TESSERA_RATE_LIMIT_URL` is set, so that several API processes share one limit.

Checking and counting are two steps: a burst of simultaneous guesses from one client can pass the check
together and overshoot the limit by at most the burst's size, which is harmless against codes of 140 bits.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tessera.activation.errors import TooManyFailures


def storage_for(url: str | None, prefix: str) -> Storage:
    """Redis (async, redis-py) for `redis://` and `rediss://` URLs; memory for none."""
    if not url:
        return MemoryStorage()
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("the rate limit URL must start with redis:// or rediss://")
    return RedisStorage(f"async+{url}", implementation="redispy", key_prefix=prefix)


class FailureLimiter:
    """Failures of one kind of look-up, counted per client address and for all clients together."""

    def __init__(self, limiter: MovingWindowRateLimiter, name: str, per_client: str, overall: str) -> None:
        self.name = name
        self._limiter = limiter
        self._items: list[tuple[RateLimitItem, tuple[str, ...] | None]] = [
            *((item, None) for item in parse_many(per_client)),
            *((item, ("all",)) for item in parse_many(overall)),
        ]

    def _keys(self, client: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        return [(item, (self.name, *(scope or ("client", client)))) for item, scope in self._items]

    async def check(self, client: str) -> None:
        """Raise TooManyFailures (with the seconds to wait) if `client`, or everyone, failed too often lately."""
        waits = []
        for item, key in self._keys(client):
            if not await self._limiter.test(item, *key):
                stats = await self._limiter.get_window_stats(item, *key)
                waits.append(stats.reset_time - time.time())
        if waits:
            raise TooManyFailures(max(1, math.ceil(max(waits))))

    async def failed(self, client: str) -> None:
        """Count one failed look-up from `client`."""
        for item, key in self._keys(client):
            await self._limiter.hit(item, *key)


class FailureLimits:
    """The process's limiters, by name, on one storage."""

    def __init__(self, storage: Storage, per_client: str, overall: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_client = per_client
        self._overall = overall
        self._named: dict[str, FailureLimiter] = {}

    def limiter(self, name: str, *, per_client: str | None = None, overall: str | None = None) -> FailureLimiter:
        """The limiter called `name`, made on first use (with these limits, else the activation settings')."""
        if name not in self._named:
            self._named[name] = FailureLimiter(
                self._limiter, name, per_client or self._per_client, overall or self._overall
            )
        return self._named[name]
