"""The server's one clock: wall time in epoch milliseconds.

Every stored time (created_at, updated_at, key and idempotency times, sweep horizons) is read
here, so the whole server agrees on one unit and one source of time.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
