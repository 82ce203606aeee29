"""One structured (JSON) line per request on standard error, written in batches.

The line holds time, level and logger (the keys every JSON log line starts with, see
``overplane/logs.py``), method, path, status, duration, request id and account id; never a
key, a body or the query string (which could carry personal data). With
``OVERPLANE_LOG_FORMAT=text`` the same fields are written as a readable line instead.

Why not the ``logging`` module: a ``StreamHandler`` takes a lock, builds a record and flushes
(one ``write`` system call) per line, which cost about a third of a point read's throughput
(``docs/performance.md``). Here a line is one msgspec encode appended to a buffer; the buffer
is written (in whole lines, :data:`ATOMIC_WRITE_BYTES` at a time) when it reaches
:data:`FLUSH_BYTES`, ``flush_seconds`` after its first line, and when the server stops. A process killed with SIGKILL loses at most that
window of lines; ``OVERPLANE_ACCESS_LOG_FLUSH_SECONDS=0`` writes every line at once.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys

import msgspec

from overplane.clock import now_ms
from overplane.rfc3339 import format_ms

#: A full buffer is written at once, whatever the timer says (bounds memory under load).
FLUSH_BYTES = 64 * 1024
#: POSIX PIPE_BUF on Linux: a write of at most this many bytes to a pipe is never interleaved
#: with other processes' writes. Standard error is often a pipe (a container runtime, systemd)
#: shared by every ``--workers`` process, so the buffer goes out in whole lines of at most
#: this size, never half a line from one worker inside a line from another.
ATOMIC_WRITE_BYTES = 4096


class AccessLine(msgspec.Struct, gc=False):
    """One request, as the access log writes it (keys in this order)."""

    time: str
    level: str
    logger: str
    pid: int
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    account_id: str | None


class AccessLog:
    """Records one request; this base records nothing (the access log switched off)."""

    def __call__(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        account_id: str | None,
    ) -> None:
        """Record one request."""

    def flush(self) -> None:
        """Write out whatever is buffered."""


class BufferedAccessLog(AccessLog):
    """JSON lines to a file descriptor, written in batches (see the module docstring)."""

    def __init__(self, fd: int, flush_seconds: float, *, text: bool = False) -> None:
        self.fd = fd
        self.flush_seconds = flush_seconds
        #: Readable lines (``OVERPLANE_LOG_FORMAT=text``) instead of JSON.
        self.text = text
        self.pid = os.getpid()
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
        buffer = self.buffer
        if self.text:
            buffer += (
                f"{format_ms(now_ms())} INFO overplane.access: {method} {path} {status} "
                f"{duration_ms:.3f} ms {request_id} {account_id or '-'}\n"
            ).encode("utf-8", "backslashreplace")
        else:
            line = AccessLine(
                format_ms(now_ms()),
                "info",
                "overplane.access",
                self.pid,
                method,
                path,
                status,
                round(duration_ms, 3),
                request_id,
                account_id,
            )
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
        """Write the buffered lines (a few system calls) and cancel the pending timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.buffer:
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        start = 0
        while start < len(data):
            end = start + ATOMIC_WRITE_BYTES
            if end < len(data):
                last_newline = data.rfind(b"\n", start, end)
                # a single line longer than the limit goes out on its own
                end = last_newline + 1 if last_newline >= 0 else data.find(b"\n", end) + 1
                end = end or len(data)
            self._write_all(memoryview(data)[start:end])
            start = end

    def _write_all(self, chunk: memoryview) -> None:
        try:
            while chunk:
                chunk = chunk[os.write(self.fd, chunk) :]
        except OSError:  # standard error closed or gone: the log is best effort
            pass


def configure(enabled: bool, flush_seconds: float, log_format: str = "json") -> AccessLog:
    """The access-log writer: batched lines on standard error (JSON, or readable with
    ``log_format`` ``text``), or nothing if disabled."""
    if not enabled:
        return AccessLog()
    return BufferedAccessLog(sys.stderr.fileno(), flush_seconds, text=log_format == "text")
