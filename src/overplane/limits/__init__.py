"""Rate limits: token buckets in this process or in Redis (docs/limits.md).

Imports only :mod:`overplane.settings` of the project; ``http/`` asks it per request.
"""

from overplane.limits.buckets import Budget, Decision, LocalBuckets
from overplane.limits.limiter import RATE_LIMITED, RateLimiter
from overplane.limits.redis_buckets import FAIL_OPEN, RedisBuckets

__all__ = [
    "FAIL_OPEN",
    "RATE_LIMITED",
    "Budget",
    "Decision",
    "LocalBuckets",
    "RateLimiter",
    "RedisBuckets",
]
