"""The PostgreSQL connection pool: first come, first served, and cheap per use.

Why not asyncpg's own pool (measured in docs/performance.md):

- **Fairness.** It hands a released connection to whichever caller asks next, so under load a
  newcomer can overtake a caller already waiting, again and again: the benchmark's p99 was
  20-70 times its p50. Here callers wait in a FIFO queue (:class:`Turns`).
- **Cost.** Each acquire and release there starts a task and a timer (``wait_for``,
  ``shield``): about a sixth of a point read's time. Here a free connection is a list pop.
- **No reset.** The server keeps no session state on a connection (no SET, no LISTEN, no
  session locks, no temporary tables), so a connection goes back to the pool as it is,
  unless an error left it in an unknown state, in which case it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import asyncpg

#: Errors after which a connection may be mid-statement, broken or closing: it is closed, not
#: reused. Beyond timeouts and cancellations: the socket failed (OSError); the driver lost
#: track of it (InterfaceError, InternalClientError); the server said the connection is gone
#: or going (class 08, connection exceptions; class 57, operator intervention: a fast
#: shutdown's "terminating connection due to administrator command", a crash, a cancelled
#: statement) or that it is out of resources (class 53) or failing (class 58, I/O errors).
#: Measured under a fast PostgreSQL shutdown with 8 writers (tests/test_crashes.py): a
#: connection whose statement had just failed with the shutdown's FATAL error was not yet
#: closed (its protocol still waiting for the end of the error), went back to the pool and
#: failed its next caller with InternalClientError "cannot switch to state 12; another
#: operation (2) is in progress": 2 answers of 500 among 9,000.
BROKEN = (
    asyncio.CancelledError,
    TimeoutError,
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresSystemError,
)


def leaves_connection_broken(error: BaseException | None) -> bool:
    """Whether ``error`` (what interrupted a connection's use, or what it caused) means the
    connection must not be used again; an ordinary statement error (a constraint, bad data)
    or the application's own exception leaves it usable."""
    while error is not None:
        if isinstance(error, BROKEN):
            return True
        # The database layer wraps driver errors (DatabaseUnavailable from ...): look inside.
        error = error.__cause__
    return False


class Turns:
    """``size`` turns, handed out first come, first served; a released turn goes straight to
    the longest waiter, so no newcomer can overtake it.

    What :class:`asyncio.Semaphore` does, minus two costs that showed in the profile under
    load: its ``locked()`` scans every waiter, and each wait asks asyncio for the running
    loop, a ``getpid`` system call (expensive on virtual machines).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def busy(self) -> bool:
        """Whether :meth:`take` would wait."""
        return not self._free

    def taken(self) -> int:
        """How many turns are held."""
        return self._size - self._free

    def waiting(self) -> int:
        """How many callers wait for a turn (cancelled ones included until they are skipped)."""
        return len(self._waiters)

    async def take(self) -> None:
        """Wait for a turn."""
        if self._free:
            self._free -= 1
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # the turn arrived as the caller gave up: pass it on
            else:
                with contextlib.suppress(ValueError):  # give() may have dropped it already
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Return a turn: to the longest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class PoolStats(NamedTuple):
    """A pool's state at one moment, for the metrics."""

    in_use: int
    waiting: int
    max_size: int


class ConnectionPool:
    """Up to ``max_size`` connections, handed to callers in the order they asked."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        max_size: int,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._max_size = max_size
        # Each turn holder uses one connection, so there are never more than max_size.
        self._turns = Turns(max_size)
        # The most recently used connection is reused first (its backend is warm).
        self._idle: list[asyncpg.Connection] = []

    def stats(self) -> PoolStats:
        """Connections lent out, callers waiting for one, and the most there may be."""
        return PoolStats(self._turns.taken(), self._turns.waiting(), self._max_size)

    async def fill(self, size: int) -> None:
        """Open connections until ``size`` are idle (at start)."""
        while len(self._idle) < size:
            self._idle.append(await self._connect())

    async def acquire(self) -> asyncpg.Connection:
        """A connection of the caller's own until :meth:`release`; waits its turn.

        Raises TimeoutError if the turn came later than the timeout, or connecting failed.
        """
        await self._take_turn()
        try:
            while self._idle:
                connection = self._idle.pop()
                if not connection.is_closed():
                    return connection
            return await self._connect()
        except BaseException:
            self._turns.give()
            raise

    def release(self, connection: asyncpg.Connection, error: BaseException | None) -> None:
        """Give ``connection`` back; ``error`` is what interrupted its use, if anything."""
        try:
            if connection.is_closed():
                return
            if leaves_connection_broken(error) or connection.is_in_transaction():
                # The statement may still run, or the server may not answer at all: drop the
                # connection rather than wait for it, so the caller's 503 is prompt.
                connection.terminate()
                return
            self._idle.append(connection)
        finally:
            self._turns.give()

    async def _take_turn(self) -> None:
        if not self._turns.busy():
            await self._turns.take()
            return
        # Holders finish or fail within the timeout, so the queue always moves; a caller that
        # nevertheless waited longer gives up its turn (cheaper than a timer per wait).
        queued = time.monotonic()
        await self._turns.take()
        if time.monotonic() - queued > self._timeout:
            self._turns.give()
            raise TimeoutError("waited longer than the database timeout for a connection")

    async def close(self) -> None:
        """Close the idle connections (at shutdown, when none is in use)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.close()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                connection.terminate()
