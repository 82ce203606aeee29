"""Token buckets in this process, and the decision every bucket (here or in Redis) returns.

A bucket holds at most ``burst`` tokens and gains ``per_second`` of them each second; a request
takes one, and is refused when less than one is left. The state is two numbers per bucket
(tokens, when they were counted), brought up to date only when the bucket is used, so an
idle bucket costs nothing but its dictionary entry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple


class Budget(NamedTuple):
    """How fast a bucket refills and how much it holds."""

    per_second: float
    burst: int


class Decision(NamedTuple):
    """What a bucket said about one request, in the terms of the ``RateLimit-*`` headers."""

    allowed: bool
    #: The bucket's size: the most requests that may be made at once (``RateLimit-Limit``).
    limit: int
    #: Whole tokens left after this request (``RateLimit-Remaining``).
    remaining: int
    #: Seconds until the bucket is full again (``RateLimit-Reset``), rounded up.
    reset: int
    #: Seconds until the next token, rounded up, at least 1, when refused (``Retry-After``);
    #: 0 when allowed.
    retry_after: int

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The ``RateLimit-*`` response headers for this decision (lower-case names;
        ``Retry-After`` goes with the 429 error itself)."""
        return (
            ("ratelimit-limit", str(self.limit)),
            ("ratelimit-remaining", str(self.remaining)),
            ("ratelimit-reset", str(self.reset)),
        )


def decide(budget: Budget, tokens: float, allowed: bool) -> Decision:
    """The decision for a bucket left with ``tokens`` (after this request's, if ``allowed``)."""
    per_second, burst = budget
    missing = burst - tokens
    reset = math.ceil(missing / per_second) if missing > 0 else 0
    retry_after = 0 if allowed else max(1, math.ceil((1 - tokens) / per_second))
    return Decision(allowed, burst, max(0, int(tokens)), reset, retry_after)


class LocalBuckets:
    """Buckets in this process's memory, by name.

    Bounded: when more than ``max_entries`` buckets exist, those that have refilled (and so
    say nothing a new bucket would not) are dropped, so addresses that come once and never
    again cannot grow the dictionary without end.
    """

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        #: name -> (tokens, when counted, when full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._sweep_at = max_entries

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: str, budget: Budget) -> Decision:
        """Take one token from the bucket ``name`` if it has one; the decision either way."""
        now = self.clock()
        per_second, burst = budget
        state = self._buckets.get(name)
        if state is None:
            tokens: float = burst
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
        else:
            tokens = min(burst, state[0] + (now - state[1]) * per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[name] = (tokens, now, now + (burst - tokens) / per_second)
        return decide(budget, tokens, allowed)

    def _sweep(self, now: float) -> None:
        self._buckets = {name: s for name, s in self._buckets.items() if s[2] > now}
        # Sweep again only once the dictionary has grown as much again: amortised O(1).
        self._sweep_at = max(self.max_entries, 2 * len(self._buckets))
