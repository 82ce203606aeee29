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
it starts and once when Redis answers again. While it is down, one batch a second tries
Redis; the other requests do not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
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

#: KEYS[1]: the bucket. ARGV: tokens per second, burst. Returns "allowed:tokens" ("1:23.5"):
#: one string, because a Lua number returned to Redis loses its fraction, and because one
#: bulk string is a third of the parsing an array of two costs redis-py per request.
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
return allowed .. ':' .. tostring(tokens)
"""


class RedisBuckets:
    """Buckets in Redis under ``prefix``; :meth:`take` answers None when failing open.

    The takes of one event-loop turn go to Redis together, as one pipeline of scripts (each
    script still atomic on its own), and the next turn's wait until that answer is back: one
    round trip and one connection for many requests, as SQLite's group commit shares one
    COMMIT. Measured with 64 concurrent requests (bench/limits.py): a request per round trip
    and per pooled connection cost about 130 µs of CPU in redis-py, and more concurrent
    requests than the pool's 100 connections failed open; see docs/performance.md.
    """

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        # No retries inside redis-py: a retry would stretch the bounded wait, and the next
        # batch tries again anyway.
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.sha = hashlib.sha1(TAKE.encode(), usedforsecurity=False).hexdigest()
        #: When the current outage started (monotonic), or None while Redis answers.
        self.down_since: float | None = None
        self._next_probe = 0.0
        self._served_open = 0
        #: Takes waiting for the next batch: (Redis key, budget, where the answer goes).
        self._pending: list[tuple[str, Budget, asyncio.Future[Decision | None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def take(self, name: str, budget: Budget) -> Decision | None:
        """Take a token from the bucket ``name``; None if Redis could not tell in time."""
        if self.down_since is not None:
            now = time.monotonic()
            if now < self._next_probe:
                self._fail_open(1)
                return None
            self._next_probe = now + PROBE_SECONDS  # this turn's requests probe; later go on
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._pending.append((f"{self.prefix}:{name}", budget, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_batches())
        return await future

    async def _send_batches(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._sender = None
            for _, _, future in self._pending:  # cancelled (shutdown): nobody will send them
                if not future.done():
                    future.set_result(None)

    async def _send(self, batch: list[tuple[str, Budget, asyncio.Future[Decision | None]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                results = await self._evaluate([(key, budget) for key, budget, _ in batch])
        except (RedisError, OSError, TimeoutError) as exc:
            self._outage(exc)
            self._fail_open(len(batch))
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
            return
        except BaseException:
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
            raise
        if self.down_since is not None:
            logger.warning(
                "rate limits enforced again: Redis answers after %.1f s; %d requests were "
                "served without a limit",
                time.monotonic() - self.down_since,
                self._served_open,
            )
            self.down_since = None
        for (_, budget, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled (the client went away)
                continue
            try:
                allowed, _, tokens = result.partition(b":")
                future.set_result(decide(budget, float(tokens), allowed == b"1"))
            except (AttributeError, TypeError, ValueError):  # an error reply for this script
                self._fail_open(1)
                future.set_result(None)

    async def _evaluate(self, takes: list[tuple[str, Budget]]) -> list[Any]:
        """Run the script once per take, in one pipeline; load it first if Redis lost it."""
        results = await self._pipeline(takes)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # a new or restarted Redis: load the script, run those takes again
            await self.client.script_load(TAKE)
            again = await self._pipeline([takes[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, takes: list[tuple[str, Budget]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for key, (per_second, burst) in takes:
            pipe.evalsha(self.sha, 1, key, per_second, burst)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _outage(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self._next_probe = self.down_since + PROBE_SECONDS
            self._served_open = 0
            logger.warning(
                "rate limits fail open: Redis did not answer (%s: %s); requests are served "
                "without limits until it does",
                type(exc).__name__,
                exc or "no detail",
            )
        else:  # a failed probe: the next one in a second
            self._next_probe = time.monotonic() + PROBE_SECONDS

    def _fail_open(self, requests: int) -> None:
        self._served_open += requests
        FAIL_OPEN.inc(requests)

    async def close(self) -> None:
        """Stop sending, and close the connections to Redis."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self.client.aclose()
