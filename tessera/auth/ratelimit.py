"""Limits on sign-in attempts, per account and per client address (the `limits` library, moving windows).

An attempt is counted when it starts, before the password is verified, so a burst of simultaneous guesses
cannot slip past the limit while the (slow, deliberately) verifications run; a successful sign-in clears its
account's count, so in effect the account limit counts failures.

Counts live in this process's memory: each API process counts on its own, and a restart forgets them. With
several API processes an attacker gets the limit once per process; put a shared limiter in front (or a
`limits` storage such as Redis here) when that matters.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tessera.auth.errors import TooManyAttempts


class SignInLimiter:
    """`attempt` before verifying a password, `succeeded` after a right one."""

    def __init__(self, per_account: str, per_client: str) -> None:
        self._account = parse_many(per_account)
        self._client = parse_many(per_client)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _items(self, account: str, client: str) -> list[tuple[RateLimitItem, str, str]]:
        return [(item, "account", account) for item in self._account] + [
            (item, "client", client) for item in self._client
        ]

    def attempt(self, account: str, client: str) -> None:
        """Count an attempt, or raise TooManyAttempts with the seconds until one is allowed again.

        Synchronous on purpose: nothing else runs on the event loop between the test and the count.
        """
        items = self._items(account, client)
        waits = [
            self._limiter.get_window_stats(item, kind, who).reset_time - time.time()
            for item, kind, who in items
            if not self._limiter.test(item, kind, who)
        ]
        if waits:
            raise TooManyAttempts(max(1, math.ceil(max(waits))))
        for item, kind, who in items:
            self._limiter.hit(item, kind, who)

    def succeeded(self, account: str) -> None:
        for item in self._account:
            self._limiter.clear(item, "account", account)
