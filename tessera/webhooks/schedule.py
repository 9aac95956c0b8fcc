"""When a failed webhook is tried again: exponential backoff with jitter, `Retry-After` honoured up to a bound.

Pure arithmetic, shared by the delivery workflow (which draws the jitter from `workflow.random()`, so a replay
waits exactly as long as the first run did) and the attempt activity (which adds what the receiver asked for).
"""

from __future__ import annotations

_MAX_DOUBLINGS = 40  # 2**40 times any base is far beyond every bound: no float overflow for absurd attempt numbers


def planned_delay(attempt: int, base: float, maximum: float, fraction: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...), with `fraction` in [0, 1) drawn at random.

    "Equal jitter": the wait is between half and all of min(maximum, base * 2**(attempt-1)), so until the
    bound is reached a wait is never shorter than the one before, while receivers failing together are not
    retried in lockstep (at the bound, waits vary between half of it and all of it).
    """
    ceiling = min(maximum, base * float(2 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS)))
    return ceiling / 2 + ceiling / 2 * min(max(fraction, 0.0), 1.0)


def next_delay(planned: float, retry_after: float | None, retry_after_max: float) -> float:
    """The wait actually taken: a receiver's `Retry-After` can lengthen it (up to the bound), never shorten it."""
    if retry_after is None:
        return planned
    return max(planned, min(retry_after, retry_after_max))
