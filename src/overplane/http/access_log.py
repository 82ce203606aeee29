"""One structured (JSON) line per request on standard error, written in batches.

The line holds time, method, path, status, duration, request id and account id; never a key,
a body or the query string (which could carry personal data).

Why not the ``logging`` module: a ``StreamHandler`` takes a lock, builds a record and flushes
(one ``write`` system call) per line, which cost about a third of a point read's throughput
(``docs/performance.md``). Here a line is one msgspec encode appended to a buffer; the buffer
is written with one system call when it reaches :data:`FLUSH_BYTES`, ``flush_seconds`` after
its first line, and when the server stops. A process killed with SIGKILL loses at most that
window of lines; ``OVERPLANE_ACCESS_LOG_FLUSH_SECONDS=0`` writes every line at once.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import time
from typing import BinaryIO, Protocol

import msgspec

from overplane.rfc3339 import format_ms

#: A full buffer is written at once, whatever the timer says (bounds memory under load).
FLUSH_BYTES = 64 * 1024


class AccessLine(msgspec.Struct, gc=False):
    """One request, as the access log writes it (keys in this order)."""

    time: str
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    account_id: str | None


class AccessLog(Protocol):
    """Records one request."""

    def __call__(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        account_id: str | None,
    ) -> None: ...

    def flush(self) -> None:
        """Write out whatever is buffered."""


class BufferedAccessLog:
    """JSON lines to a binary stream, written in batches (see the module docstring)."""

    def __init__(self, stream: BinaryIO, flush_seconds: float) -> None:
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None
        self._encode_into = msgspec.json.Encoder().encode_into
        atexit.register(self.flush)

    def __call__(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        account_id: str | None,
    ) -> None:
        line = AccessLine(
            format_ms(time.time_ns() // 1_000_000),
            method,
            path,
            status,
            round(duration_ms, 3),
            request_id,
            account_id,
        )
        buffer = self.buffer
        self._encode_into(line, buffer, -1)
        buffer += b"\n"
        if len(buffer) >= FLUSH_BYTES or self.flush_seconds <= 0:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside an event loop (a script): write now
            self.flush()
            return
        if self.timer is None:
            self.timer = loop.call_later(self.flush_seconds, self.flush)
            self.timer_loop = loop
        elif self.timer_loop is not loop:  # the timer's loop has ended (tests run many)
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines with one system call and cancel the pending timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: the log is best effort
                pass


class DiscardedAccessLog:
    """The access log when it is switched off."""

    def __call__(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        account_id: str | None,
    ) -> None:
        """Record nothing."""

    def flush(self) -> None:
        """Nothing is buffered."""


def configure(enabled: bool, flush_seconds: float) -> AccessLog:
    """The access-log writer: batched JSON lines on standard error, or nothing if disabled."""
    if not enabled:
        return DiscardedAccessLog()
    return BufferedAccessLog(sys.stderr.buffer, flush_seconds)
