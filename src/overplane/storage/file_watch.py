"""Hearing every write to a SQLite database, from any process, through Linux inotify.

SQLite has no notifications across processes, but every commit writes its pages to the
database's write-ahead log with ``write()``, and the kernel reports each such write to an
inotify watch on the directory (``IN_MODIFY``). The event loop reads those reports as they
come, so :attr:`FileWatch.version` moves before any request that follows a commit elsewhere
(``overplane keys revoke``, a hand-written UPDATE, another server process) is served: uvloop
runs the I/O callbacks of a loop iteration before the request tasks they start.

Any event counts, the server's own writes and other files in the directory included, so the
watch errs only towards forgetting too much. Where inotify is missing (not Linux, no libc,
no watches left), :meth:`FileWatch.start` gives None and nothing is cached.

Why not the ``watchfiles`` library (installed anyway with uvicorn[standard])? Measured by
``bench/file_watch.py`` (docs/performance.md, "The SQLite key watch"; 2 shared cores): from
another process's commit to the version moving, this watch takes 0.14-0.16 ms at the median
(mostly the commit itself), the library 100 ms at its default 50 ms step, and still 2 ms
(p99 93-169 ms) at a 1 ms step, because its Rust thread sleeps a step before it looks and then
needs the GIL; that delay is a window in which a revoked key still works. Idle, this watch
costs nothing (the loop sleeps in epoll), the library's thread 0.1 % of a core at 50 ms and
2.6 % at 1 ms. Under 500 writes a second, this watch wakes the loop about once per write,
36-58 µs each (2-3 % of the loop); the library at a 1 ms step costs more in the whole process
(90-144 µs a write). The library's gain is portability (macOS, Windows), where the server
instead looks up every key: correct, one query slower. So this watch stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger("overplane.storage")

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_EVENTS = _IN_MODIFY | _IN_ATTRIB | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE


class FileWatch:
    """An inotify watch on one directory, drained by the running event loop."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        self._counter = 1
        #: Moves on every write in the directory; None once the watch is stopped.
        self.version: int | None = self._counter
        loop.add_reader(fd, self._drain)

    @classmethod
    def start(cls, directory: str) -> FileWatch | None:
        """Watch ``directory`` from the running event loop; None if inotify is unavailable."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            if libc.inotify_add_watch(fd, os.fsencode(directory), _EVENTS) < 0:
                error = ctypes.get_errno()
                os.close(fd)
                raise OSError(error, "inotify_add_watch")
        except (OSError, AttributeError) as exc:
            logger.warning(
                "no inotify watch on %s (%s): API keys are looked up every time", directory, exc
            )
            return None
        return cls(fd, asyncio.get_running_loop())

    def changed(self) -> None:
        """Move the version (a write was seen, or this process changed a key)."""
        self._counter += 1
        if self.version is not None:
            self.version = self._counter

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._fd, 65536):
                pass
        self.changed()

    def stop(self) -> None:
        """Stop watching; :attr:`version` is None from now on."""
        if self.version is None:
            return
        self.version = None
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
