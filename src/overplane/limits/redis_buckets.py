"""Token buckets in Redis, shared by every server process on every host.

One Lua script per request does the whole read-refill-take-write on the server, so two
processes taking from one bucket at once cannot both read the same count and both spend it
(Redis runs a script alone). The script reads Redis's own clock (``TIME``), not the caller's:
processes on hosts whose clocks disagree still refill a bucket at one rate. A bucket is one
hash ``{t: tokens, ts: microseconds}`` that expires once it would be full again, so idle keys
and addresses leave nothing behind.

When Redis is down or slower than the timeout, the request is served without a limit (fail
open: an outage of the limiter must not become an outage of the API), the
``overplane_rate_limit_fail_open_total`` counter counts it, and the outage is logged once when
it starts and once when Redis answers again. While it is down, one request a second tries
Redis; the others do not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from overplane.limits.buckets import Budget, Decision, decide

logger = logging.getLogger("overplane.limits")

#: Requests served without a limit because Redis could not be asked in time.
FAIL_OPEN = Counter(
    "overplane_rate_limit_fail_open",
    "Requests served without a rate limit because Redis was down or slow (fail open).",
)

#: While Redis is down, how often one request tries it again.
PROBE_SECONDS = 1.0

#: KEYS[1]: the bucket. ARGV: tokens per second, burst. Returns {allowed (0/1), tokens left
#: as a string} (a Lua number returned to Redis would lose its fraction).
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
elseif now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate / 1000000)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets in Redis under ``prefix``; :meth:`take` answers None when failing open."""

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        # No retries inside redis-py: a retry would stretch the bounded wait, and the next
        # request tries again anyway.
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.script = self.client.register_script(TAKE)
        #: When the current outage started (monotonic), or None while Redis answers.
        self.down_since: float | None = None
        self._next_probe = 0.0
        self._served_open = 0

    async def take(self, name: str, budget: Budget) -> Decision | None:
        """Take a token from the bucket ``name``; None if Redis could not tell in time."""
        if self.down_since is not None:
            now = time.monotonic()
            if now < self._next_probe:
                self._fail_open()
                return None
            self._next_probe = now + PROBE_SECONDS  # this request probes; others go on
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await self.script(
                    keys=[f"{self.prefix}:{name}"], args=[budget.per_second, budget.burst]
                )
            allowed, tokens = result
            decision = decide(budget, float(tokens), bool(allowed))
        except (RedisError, OSError, TimeoutError, ValueError, TypeError) as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                self._next_probe = self.down_since + PROBE_SECONDS
                self._served_open = 0
                logger.warning(
                    "rate limits fail open: Redis did not answer (%s: %s); requests are "
                    "served without limits until it does",
                    type(exc).__name__,
                    exc or "no detail",
                )
            self._fail_open()
            return None
        if self.down_since is not None:
            logger.warning(
                "rate limits enforced again: Redis answers after %.1f s; %d requests were "
                "served without a limit",
                time.monotonic() - self.down_since,
                self._served_open,
            )
            self.down_since = None
        return decision

    def _fail_open(self) -> None:
        self._served_open += 1
        FAIL_OPEN.inc()

    async def close(self) -> None:
        """Close the connections to Redis."""
        await self.client.aclose()
