"""The server's rate limits: one bucket per API key, and one per client address for failed
authentications (docs/limits.md).

- **Per key**: every authenticated /api request takes a token from its key's bucket (live and
  test keys have budgets of their own); an empty bucket is a ``429 rate_limited``.
- **Failed authentication per address**: each request that fails authentication takes a token
  from its client address's bucket. When that bucket is empty the process remembers the
  address as blocked until its next token, and answers requests from it with a 429 *before
  looking at their key*, so a guess is neither checked nor answered faster than the budget
  refills; a valid key from that address waits too. Successful requests cost the address
  nothing, so this adds no work (and no Redis round trip) to the normal path. With Redis,
  each process learns of a block on the first failure it sees itself, so N processes let at
  most N guesses through per refill.

The buckets live in this process (:class:`~overplane.limits.buckets.LocalBuckets`) or, with
``OVERPLANE_REDIS_URL``, in Redis (:class:`~overplane.limits.redis_buckets.RedisBuckets`).
"""

from __future__ import annotations

import time

from prometheus_client import Counter

from overplane.limits.buckets import Budget, Decision, LocalBuckets
from overplane.limits.redis_buckets import RedisBuckets
from overplane.settings import Settings

#: Requests refused with 429 rate_limited, by the limit that refused them (``key``: a key's
#: budget; ``failed_auth``: an address's failed authentications).
RATE_LIMITED = Counter(
    "overplane_rate_limited",
    "Requests refused with 429 rate_limited, by limit.",
    ["limit"],
)
_KEY_REFUSED = RATE_LIMITED.labels(limit="key")
_ADDRESS_REFUSED = RATE_LIMITED.labels(limit="failed_auth")

#: Blocked addresses remembered at most; past it, expired blocks are dropped first.
MAX_BLOCKED = 10_000


class RateLimiter:
    """The limits of one server process, as its settings configure them."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit
        self.live = Budget(settings.rate_limit_live_per_second, settings.rate_limit_live_burst)
        self.test = Budget(settings.rate_limit_test_per_second, settings.rate_limit_test_burst)
        self.failed_auth = Budget(
            settings.rate_limit_failed_auth_per_second, settings.rate_limit_failed_auth_burst
        )
        self.local = LocalBuckets()
        self.redis: RedisBuckets | None = None
        if self.enabled and settings.redis_url:
            self.redis = RedisBuckets(
                settings.redis_url, settings.redis_prefix, settings.redis_timeout_seconds
            )
        #: address -> (monotonic time its block ends, the decision that blocked it)
        self._blocked: dict[str, tuple[float, Decision]] = {}

    async def close(self) -> None:
        """Release the Redis connections, if any."""
        if self.redis is not None:
            await self.redis.close()

    async def _take(self, name: str, budget: Budget) -> Decision | None:
        if self.redis is not None:
            return await self.redis.take(name, budget)
        return self.local.take(name, budget)

    async def take_for_key(self, key_id: str, livemode: bool) -> Decision | None:
        """Take a token from the key's bucket; None when limits are off or failing open.
        A refusal is counted in ``overplane_rate_limited_total``."""
        if not self.enabled:
            return None
        decision = await self._take(f"key:{key_id}", self.live if livemode else self.test)
        if decision is not None and not decision.allowed:
            _KEY_REFUSED.inc()
        return decision

    def blocked(self, address: str | None) -> Decision | None:
        """The refusal for a request from ``address`` if it is blocked for failing
        authentication too often (answer it without looking at its key); else None."""
        if not self._blocked or address is None:
            return None
        entry = self._blocked.get(address)
        if entry is None:
            return None
        until, decision = entry
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return None
        _ADDRESS_REFUSED.inc()
        retry_after = max(1, int(-(-left // 1)))
        return decision._replace(retry_after=retry_after, reset=max(decision.reset, retry_after))

    async def failed_authentication(self, address: str | None) -> Decision | None:
        """Charge a failed authentication to ``address``; the decision (refused: answer 429
        rather than 401, and block the address until its next token), or None when limits
        are off, the address is unknown, or Redis fails open."""
        if not self.enabled or address is None:
            return None
        decision = await self._take(f"addr:{address}", self.failed_auth)
        if decision is not None and not decision.allowed:
            _ADDRESS_REFUSED.inc()
            if len(self._blocked) >= MAX_BLOCKED:
                now = time.monotonic()
                self._blocked = {a: e for a, e in self._blocked.items() if e[0] > now}
                if len(self._blocked) >= MAX_BLOCKED:  # all current: forget the oldest half
                    self._blocked = dict(list(self._blocked.items())[MAX_BLOCKED // 2 :])
            # A refused bucket holds less than one token, so its next one comes within
            # 1 / rate: by then the next failure finds a token to take.
            wait = 1 / self.failed_auth.per_second
            self._blocked[address] = (time.monotonic() + wait, decision)
        return decision
