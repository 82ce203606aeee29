"""The two database backends behind one small async interface.

SQL in this project is written once with ``?`` placeholders; the PostgreSQL backend rewrites it
to ``$1, $2, …`` once per statement text and caches the result. The hot path therefore runs
plain driver calls (sqlite3, asyncpg) with no query builder in between; the measurements that
led here are in ``docs/performance.md``.

Failures the client cannot fix (the database is down, locked or slow) surface as
:class:`DatabaseUnavailable`, which the HTTP layer renders as ``503 unavailable``. Every
statement on either backend is bounded by ``OVERPLANE_DATABASE_TIMEOUT``
(:attr:`Settings.database_timeout_seconds`), so a stuck statement is a 503, never a hung
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import asyncpg

from overplane.settings import Settings
from overplane.storage.file_watch import FileWatch
from overplane.storage.pool import BROKEN, ConnectionPool, PoolStats
from overplane.storage.schema import API_KEYS_CHANNEL

Row = Sequence[Any]
_T = TypeVar("_T")
logger = logging.getLogger("overplane.storage")


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or refused the connection."""


class Recording(NamedTuple):
    """The event a SQLite write records through its connection's temporary triggers.

    ``trigger`` is the ``CREATE TEMP TRIGGER IF NOT EXISTS`` statement the write relies on
    (installed on the connection before its first such write); while the write runs, the
    SQL function ``overplane_event(i)`` returns ``values[i]`` (NULL at any other time, so
    the trigger records nothing for writes made without a recording).
    """

    trigger: str
    values: tuple[Any, ...]


class Executor(ABC):
    """Runs statements: the database's pool, or one connection inside a transaction."""

    #: ``sqlite`` or ``postgresql``: where the two need different SQL.
    dialect: str

    @abstractmethod
    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """Run one statement and return its first row, or None."""

    @abstractmethod
    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return all its rows."""

    @abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one statement that returns nothing."""

    @abstractmethod
    def atomic(self) -> AbstractAsyncContextManager[Executor]:
        """Statements that commit together: a new transaction, or the one this already is."""

    async def fetch_recorded(
        self, sql: str, args: Sequence[Any], recording: Recording
    ) -> Row | None:
        """SQLite: run one write whose event its connection's triggers record from
        ``recording`` (see :class:`SQLiteDatabase`, "Events"); its first row, or None.
        PostgreSQL statements write their events themselves (``objects.py``)."""
        raise NotImplementedError(f"{self.dialect}: events are written by the statement itself")


class Transaction(Executor):
    """Statements that commit together, or not at all."""

    def atomic(self) -> AbstractAsyncContextManager[Executor]:
        return contextlib.nullcontext(self)

    @abstractmethod
    async def try_lock(self, key: str) -> bool:
        """Take a lock on ``key`` until the transaction ends; False if someone else holds it.

        Taking it never waits, so a caller can tell "in use" from "done".
        """


class Database(Executor):
    """A connection (pool) to one database."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: committed when the block ends normally, rolled back on an exception."""

    def atomic(self) -> AbstractAsyncContextManager[Executor]:
        return self.transaction()

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    async def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a trivial query."""
        await self.fetch_one("SELECT 1")

    async def refresh_statistics(self) -> None:
        """Analyze the tables that changed much since their statistics were gathered, so the
        planner keeps choosing the right indexes even where nothing else analyzes them
        (PostgreSQL with autovacuum off, a fresh deployment, a bulk load)."""

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's state (for the metrics); None where there is no pool."""
        return None

    def watch_keys(self) -> None:
        """Start following changes to API keys made by any process (see :meth:`keys_version`);
        a server calls this at start, the one-shot CLI commands do not."""

    def keys_version(self) -> int | None:
        """A number that changes whenever an API key may have been revoked or deleted by any
        process; None while this process cannot tell, so nothing may rely on it."""
        return None

    def keys_changed(self) -> None:
        """This process changed a key: move :meth:`keys_version` now, without waiting for the
        notification (other processes hear of it through theirs)."""


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    path = url.removeprefix("sqlite:///")
    if not path or path == url:
        raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.sqlite3)")
    return path


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return urlsplit(url).scheme in {"postgresql", "postgres"}


#: SQLite primary result codes that mean "try again later", not "this statement is wrong":
#: BUSY, LOCKED, INTERRUPT (only the statement timeout interrupts), IOERR, FULL, CANTOPEN,
#: PROTOCOL.
_SQLITE_TRANSIENT = frozenset({5, 6, 9, 10, 13, 14, 15})


def _sqlite_error(exc: sqlite3.Error) -> Exception:
    """DatabaseUnavailable for a transient SQLite failure; the error itself otherwise."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_INTERRUPT:
        return DatabaseUnavailable("the statement ran longer than the database timeout")
    if code is not None and code & 0xFF in _SQLITE_TRANSIENT:
        return DatabaseUnavailable(str(exc))
    return exc


#: Rows changed in a table (at least this many, and a tenth of it) before it is analyzed again.
STATISTICS_MIN_CHANGES = 1000


@lru_cache(maxsize=4096)
def _is_read(sql: str) -> bool:
    """Whether a statement only reads (it may then run outside a commit group)."""
    return sql.lstrip()[:6].upper() == "SELECT"


class SQLiteDatabase(Database):
    """One sqlite3 connection, called directly on the event loop, committing writes in groups.

    A point query takes microseconds, far less than handing it to a thread would cost. WAL
    mode lets readers proceed while another process writes; ``busy_timeout`` makes a writer
    wait for another process's lock instead of failing at once.

    **Group commit.** Every write (a single statement, or a :meth:`transaction`) joins the
    open *commit group*, opening one (``BEGIN IMMEDIATE``) if there is none, and the group
    commits once, at the next turn of the event loop: the writes of every request that ran
    in this turn share one ``COMMIT``. Each write returns only after that commit, so an
    acknowledged write is as durable as before; a transaction runs inside a savepoint, so its
    failure undoes it alone. Why: a commit writes every page the transaction touched to the
    WAL, and writes that arrive together touch the same pages (the newest leaf of each
    index, the counter row, the events table), so sharing the commit writes each page once.
    Measured honestly, over HTTP writes ran at the same req/s and CPU per request with and
    without it (docs/performance.md, "Events: the cost of the outbox"); at the storage layer
    32 concurrent creates cost 202 µs of CPU each with it against 488 µs one at a time, and
    the statement timeout below relies on it, so it stays ("Writes and tails", item 3).

    A read when no group is open runs at once and sees committed data only. A read while a
    group is open runs inside it, so it may see a write that is not committed yet; it then
    waits for that commit as a write does, so no reply ever shows data that a failed commit
    took back: the reader gets the same error as the writers.

    The connection is shared by every request of the process, so a transaction holds
    ``_transaction_lock``: statements of other requests wait for it rather than slip into
    its savepoint.

    **Events.** A create, update or delete with its event is one statement: temporary
    triggers on the resource's table (this connection's own, never stored in the file; each
    installed before the first write that relies on it, :class:`Recording`) insert the event
    and its outbox row (for the relay), taking the request's part (event id, time, request id,
    Idempotency-Key) from the SQL function ``overplane_event(i)``, which returns the values
    of the write running now and NULL at any other time. One statement is atomic by itself,
    so no savepoint is needed, and an update reads the values it replaces from the trigger's
    ``OLD`` row rather than from a SELECT before it. Measured (docs/performance.md,
    "Events"): with a SELECT, three INSERTs and a savepoint, the event cost an update 52 µs
    of CPU on top of its own 36 (storage layer, 8 concurrent writers); as one statement,
    28 µs. A rollback may take a trigger's creation back with it, so every rollback forgets
    which triggers are installed (``IF NOT EXISTS`` makes installing one again harmless).

    **Statement timeout.** A statement runs on the event loop, so a slow one would stall
    every request of the process. Each statement gets a deadline ``timeout`` seconds ahead;
    a progress handler, called every :attr:`progress_instructions` instructions,
    interrupts it once the deadline has passed (SQLITE_INTERRUPT: the statement is undone,
    and an interrupted write inside the commit group takes the group back, whose writers
    all get the error: nothing unacknowledged is kept, nothing acknowledged is lost). Waiting
    for another process's write lock is not running instructions: ``busy_timeout`` bounds it,
    at most the same ``timeout``.
    """

    dialect = "sqlite"
    #: How many virtual-machine instructions run between two checks of the statement
    #: timeout. Measured (bench/statement_timeout.py, docs/performance.md "Statement
    #: timeout"): a retrieve runs 30 instructions and a create with its event 402 in all, so
    #: at 1,000 the handler never runs for them and their only cost is the deadline's clock
    #: read (61 ns, against a 23 µs storage retrieve); one call costs about 0.4 µs (every
    #: instruction: a 10,000-row scan took 49 ms instead of 6.7), so at 1,000 a long
    #: statement pays well under 1%, and one that never ends is interrupted 0.1 ms late.
    progress_instructions = 1000

    def __init__(self, path: str, busy_timeout_ms: int, timeout: float = 10.0) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._connection.set_progress_handler(self._past_deadline, self.progress_instructions)
        busy_timeout_ms = min(busy_timeout_ms, max(1, round(timeout * 1000)))
        self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process; on power loss the
        # last transactions may roll back, but the file never corrupts (docs/deployment.md).
        self._connection.execute("PRAGMA synchronous = NORMAL")
        self._connection.execute("PRAGMA foreign_keys = ON")
        # A sampled ANALYZE (about a thousand rows per index) takes milliseconds even on
        # millions of rows, and lets the planner pick a filter's index over the list index.
        self._connection.execute("PRAGMA analysis_limit = 1000")
        # Inside a transaction every statement keeps a statement journal (to undo just that
        # statement); an appointment insert touches about 20 pages, past the 64 KiB at which
        # SQLite spills the journal to a temporary file on disk. Kept in memory, an insert
        # with its event took 204 µs instead of 345 in a storage-layer loop (over HTTP the
        # figures did not move: docs/performance.md, "Events").
        self._connection.execute("PRAGMA temp_store = MEMORY")
        #: The values ``overplane_event(i)`` returns while a recorded write runs.
        self._recording: tuple[Any, ...] | None = None
        #: The :attr:`Recording.trigger` statements known to be installed.
        self._installed: set[str] = set()
        self._connection.create_function("overplane_event", 1, self._recorded)
        self._transaction_lock = asyncio.Lock()
        #: The open commit group's outcome, None when no group is open.
        self._group: asyncio.Future[None] | None = None
        #: The group's turn came while a transaction was running: it commits when that ends.
        self._commit_due = False
        self.run("ANALYZE", (), 0)
        self._analyzed_at = self._connection.total_changes
        self._path = path
        self._key_watch: FileWatch | None = None

    def _past_deadline(self) -> bool:
        """The progress handler: True (interrupt the statement) once its deadline passed."""
        return time.monotonic() > self._deadline

    def _recorded(self, index: int) -> Any:
        """``overplane_event(index)``: a value of the recorded write running now, or NULL."""
        recording = self._recording
        return None if recording is None else recording[index]

    def _execute_now(self, sql: str) -> None:
        """Run a statement outside :meth:`run` (ROLLBACK, RELEASE) with a fresh deadline."""
        if sql.startswith("ROLLBACK"):
            self._installed.clear()
        self._deadline = time.monotonic() + self._timeout
        self._connection.execute(sql)

    def run(
        self, sql: str, args: Sequence[Any], rows: int | None, recording: Recording | None = None
    ) -> list[Row]:
        """Run one statement now; return up to ``rows`` rows (all if None). With
        ``recording``, the statement's triggers record its event (class docstring)."""
        self._deadline = time.monotonic() + self._timeout
        try:
            if recording is not None:
                if recording.trigger not in self._installed:
                    self._connection.execute(recording.trigger)
                    self._installed.add(recording.trigger)
                self._recording = recording.values
            cursor = self._connection.execute(sql, args)
            result: list[Row] = cursor.fetchall() if rows is None else cursor.fetchmany(rows)
            # A RETURNING statement completes only once fully read (its triggers too).
            cursor.fetchall()
            return result
        except sqlite3.Error as exc:
            self._installed.clear()
            if self._group is not None and not self._connection.in_transaction:
                # The error took the whole group back (an I/O error, a full disk): its
                # writers must hear so, and later writes must not run without a group.
                self._fail_group(_sqlite_error(exc))
            raise _sqlite_error(exc) from exc
        finally:
            self._recording = None

    def _join_group(self) -> asyncio.Future[None]:
        """The open commit group, opened now (and its commit scheduled) if there is none."""
        group = self._group
        if group is None:
            # IMMEDIATE takes the write lock now (waiting up to busy_timeout for another
            # process), so no write of the group can fail later on a lock upgrade.
            self.run("BEGIN IMMEDIATE", (), 0)
            loop = asyncio.get_running_loop()
            group = self._group = loop.create_future()
            # Retrieved here, so a group whose writers all went away is not logged as lost.
            group.add_done_callback(_retrieve)
            loop.call_soon(self._commit_group)
        return group

    def _commit_group(self) -> None:
        group = self._group
        if group is None:
            return
        if self._transaction_lock.locked():
            # A transaction is between statements (awaiting something else): it commits the
            # group when it ends, rather than have its half committed now.
            self._commit_due = True
            return
        self._commit_due = False
        self._group = None
        try:
            self.run("COMMIT", (), 0)
        except Exception as exc:  # every writer of the group gets the error
            if self._connection.in_transaction:
                self._execute_now("ROLLBACK")
            if not group.done():
                group.set_exception(exc)
        else:
            group.set_result(None)

    def _fail_group(self, exc: Exception) -> None:
        group, self._group = self._group, None
        if group is not None and not group.done():
            group.set_exception(exc)

    async def _run_outside_transactions(
        self, sql: str, args: Sequence[Any], rows: int | None, recording: Recording | None = None
    ) -> list[Row]:
        if self._transaction_lock.locked():
            async with self._transaction_lock:
                return await self._run_in_group(sql, args, rows, recording)
        return await self._run_in_group(sql, args, rows, recording)

    async def _run_in_group(
        self, sql: str, args: Sequence[Any], rows: int | None, recording: Recording | None = None
    ) -> list[Row]:
        if self._group is None and _is_read(sql):
            return self.run(sql, args, rows)
        group = self._join_group()
        # A failing statement undoes itself alone (SQLite's ABORT), not the group.
        result = self.run(sql, args, rows, recording)
        # Shielded: a cancelled request must not cancel the commit the others wait for.
        await asyncio.shield(group)
        return result

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        result = await self._run_outside_transactions(sql, args, 1)
        return result[0] if result else None

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._run_outside_transactions(sql, args, None)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._run_outside_transactions(sql, args, 0)

    async def fetch_recorded(
        self, sql: str, args: Sequence[Any], recording: Recording
    ) -> Row | None:
        result = await self._run_outside_transactions(sql, args, 1, recording)
        return result[0] if result else None

    async def refresh_statistics(self) -> None:
        # total_changes counts this connection's rows written: a cheap, local trigger.
        changes = self._connection.total_changes
        if changes - self._analyzed_at >= STATISTICS_MIN_CHANGES:
            await self.execute("ANALYZE")
            self._analyzed_at = changes

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        try:
            async with self._transaction_lock:
                group = self._join_group()
                self.run("SAVEPOINT body", (), 0)
                try:
                    yield _SQLiteTransaction(self)
                except BaseException:
                    if self._connection.in_transaction:
                        self._execute_now("ROLLBACK TO body")
                        self._execute_now("RELEASE body")
                    raise
                self.run("RELEASE body", (), 0)
        finally:
            if self._commit_due:
                self._commit_group()
        await asyncio.shield(group)

    def watch_keys(self) -> None:
        if self._key_watch is None and self._path != ":memory:":
            self._key_watch = FileWatch.start(os.path.dirname(os.path.abspath(self._path)))

    def keys_version(self) -> int | None:
        return None if self._key_watch is None else self._key_watch.version

    def keys_changed(self) -> None:
        if self._key_watch is not None:
            self._key_watch.changed()

    async def close(self) -> None:
        if self._key_watch is not None:
            self._key_watch.stop()
            self._key_watch = None
        self._commit_group()
        self._connection.close()


def _retrieve(group: asyncio.Future[None]) -> None:
    if not group.cancelled():
        group.exception()


class _SQLiteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        result = self._db.run(sql, args, 1)
        return result[0] if result else None

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self._db.run(sql, args, None)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._db.run(sql, args, 0)

    async def fetch_recorded(
        self, sql: str, args: Sequence[Any], recording: Recording
    ) -> Row | None:
        result = self._db.run(sql, args, 1, recording)
        return result[0] if result else None

    async def try_lock(self, key: str) -> bool:
        # BEGIN IMMEDIATE already made this the only writing transaction on the file.
        return True


#: Driver errors that mean "the database is down, going, overloaded or too slow" (503), not
#: "this statement is wrong" (500): those after which a connection is retired
#: (:data:`~overplane.storage.pool.BROKEN`, which has a statement timeout's
#: QueryCanceledError among them), cancellation aside, which stays a cancellation.
_POSTGRES_DOWN = tuple(error for error in BROKEN if error is not asyncio.CancelledError)

#: How much longer than the server's ``statement_timeout`` the driver waits for an answer
#: before it gives up on the connection: the server's own cancel normally arrives first and
#: leaves the connection clean; this bounds a server that does not answer at all.
CLIENT_TIMEOUT_MARGIN_SECONDS = 0.5


@lru_cache(maxsize=4096)
def postgres_sql(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for PostgreSQL: ``$1``, ``$2``, …"""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


@contextmanager
def _postgres_errors() -> Iterator[None]:
    try:
        yield
    except _POSTGRES_DOWN as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


class _PostgresTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with _postgres_errors():
            row: Row | None = await self._connection.fetchrow(postgres_sql(sql), *args)
            return row

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with _postgres_errors():
            rows: list[Row] = await self._connection.fetch(postgres_sql(sql), *args)
            return rows

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        with _postgres_errors():
            await self._connection.execute(postgres_sql(sql), *args)

    async def try_lock(self, key: str) -> bool:
        # A transaction-scoped advisory lock: released at commit or rollback, and safe behind
        # a transaction-pooling PgBouncer (no session state survives the transaction).
        with _postgres_errors():
            taken = await self._connection.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", key
            )
            return bool(taken)


#: How often the key watch proves that notifications still reach it: it sends itself one
#: through the pool and waits for it on the listening connection. That catches a connection a
#: firewall dropped silently and a PgBouncer in transaction mode (which accepts LISTEN but
#: never delivers), both of which would otherwise look healthy while missing revocations.
KEY_WATCH_PROBE_SECONDS = 5.0
#: How long the key watch waits before reconnecting after losing its connection.
KEY_WATCH_RETRY_SECONDS = 1.0
#: The key watch's connection, as pg_stat_activity shows it.
KEY_WATCH_APPLICATION_NAME = "overplane-key-watch"
_PROBE = "probe:"


class _KeyWatch:
    """One connection that LISTENs on :data:`API_KEYS_CHANNEL`, reconnecting when it is lost.

    ``version`` moves on every key change notified and on every (re)connection. It is None,
    and nothing may be cached on its word, until a probe notification has made the round
    trip, and again as soon as the connection is lost or a probe goes unanswered.
    """

    def __init__(
        self, dsn: str, timeout: float, execute: Callable[[str, Sequence[Any]], Awaitable[None]]
    ) -> None:
        self.version: int | None = None
        self._counter = 0
        self._dsn = dsn
        self._timeout = timeout
        self._execute = execute
        self._probe = ""
        self._token = secrets.token_hex(8)  # tells our probes from other processes'
        self._probe_arrived = asyncio.Event()
        # Checked as well as cancelling the task: Python 3.11's asyncio.wait_for (which
        # asyncpg's connect uses) can swallow a cancellation that arrives as it completes.
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    def changed(self) -> None:
        """A key changed (a notification, or this process changed one): move the version."""
        self._counter += 1
        if self.version is not None:
            self.version = self._counter

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if not payload.startswith(_PROBE):  # the trigger's payload: a key changed
            self.changed()
        elif payload == self._probe:  # every process hears every probe; ours is awaited
            self._probe_arrived.set()

    async def _round_trip(self, number: int) -> None:
        """Send a probe through the pool and wait for it here; TimeoutError if it is lost."""
        self._probe = f"{_PROBE}{self._token}:{number}"
        self._probe_arrived.clear()
        await self._execute("SELECT pg_notify(?, ?)", (API_KEYS_CHANNEL, self._probe))
        async with asyncio.timeout(self._timeout):
            await self._probe_arrived.wait()

    async def _listen(self) -> None:
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            server_settings={"application_name": KEY_WATCH_APPLICATION_NAME},
        )
        try:
            lost = asyncio.Event()

            def on_lost(_: object) -> None:
                self.version = None  # at once: the loop below may be asleep
                lost.set()

            connection.add_termination_listener(on_lost)
            await connection.add_listener(API_KEYS_CHANNEL, self._notified)
            probes = 0
            while not lost.is_set() and not self._stopping:
                await self._round_trip(probes)
                if probes == 0:  # heard our own probe: from now on, changes are heard too
                    self._counter += 1
                    self.version = self._counter
                probes += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KEY_WATCH_PROBE_SECONDS):
                        await lost.wait()
        finally:
            self.version = None
            connection.terminate()

    async def _run(self) -> None:
        failing = False
        while not self._stopping:
            try:
                await self._listen()
                failing = False
            except (*_POSTGRES_DOWN, asyncpg.PostgresError, DatabaseUnavailable) as exc:
                if not failing:  # once per outage, not once per retry
                    logger.warning(
                        "key watch: notifications are not arriving (%s); keys are looked up "
                        "on every request until they do",
                        type(exc).__name__,
                    )
                failing = True
            await asyncio.sleep(KEY_WATCH_RETRY_SECONDS)

    async def stop(self) -> None:
        """Close the connection and stop reconnecting (waiting at most one timeout: a
        shutdown must never hang on the watch)."""
        self._stopping = True
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=self._timeout)
        if not self._task.done():
            logger.warning("key watch did not stop within %s s", self._timeout)


class PostgresDatabase(Database):
    """A pool of asyncpg connections (:class:`~overplane.storage.pool.ConnectionPool`).

    When PostgreSQL goes away, calls fail fast with :class:`DatabaseUnavailable` (503); the
    pool replaces broken connections on later calls, so the server recovers by itself when
    the database returns.
    """

    dialect = "postgresql"

    def __init__(self, pool: ConnectionPool, timeout: float, dsn: str) -> None:
        self._pool = pool
        self._timeout = timeout
        self._dsn = dsn
        self._key_watch: _KeyWatch | None = None

    @classmethod
    async def connect(cls, url: str, settings: Settings) -> PostgresDatabase:
        """Open a pool. If PostgreSQL cannot be reached yet, open it empty, so the server
        starts, answers 503 until the database is back, and then recovers on its own."""
        dsn = url.replace("postgres://", "postgresql://", 1)
        timeout = settings.database_timeout_seconds

        async def connect_one() -> asyncpg.Connection:
            return await asyncpg.connect(
                dsn,
                timeout=timeout,
                command_timeout=timeout + CLIENT_TIMEOUT_MARGIN_SECONDS,
                statement_cache_size=settings.pg_statement_cache_size,
                # A startup parameter, not a SET: no session state to leak behind a
                # transaction-mode PgBouncer (which needs `ignore_startup_parameters =
                # statement_timeout`, docs/deployment.md). The server cancels a statement
                # past it, a lock wait included, and so releases what it held or queued for.
                server_settings={"statement_timeout": str(max(1, round(timeout * 1000)))},
            )

        pool = ConnectionPool(
            connect_one, max(settings.pg_pool_max_size, settings.pg_pool_min_size), timeout
        )
        with contextlib.suppress(*_POSTGRES_DOWN):
            await pool.fill(settings.pg_pool_min_size)
        return cls(pool, timeout, dsn)

    def pool_stats(self) -> PoolStats:
        return self._pool.stats()

    async def _run(self, call: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """``call`` with a pooled connection of its own."""
        with _postgres_errors():
            connection = await self._pool.acquire()
            try:
                result = await call(connection)
            except BaseException as exc:
                self._pool.release(connection, exc)
                raise
            self._pool.release(connection, None)
            return result

    async def refresh_statistics(self) -> None:
        # Measured (docs/performance.md, "Named rows and the account-first keys"): with no
        # statistics, indexes created on empty tables report 0 rows, every index of an
        # object table looks equally cheap for a by-id statement, and PostgreSQL may walk a
        # (account_id, livemode, ...) index of the whole account instead of the primary key:
        # a delete went from 5,600 to 245 per second. Autovacuum fixes it within a minute
        # where it runs; this does the same where it does not.
        stale = await self.fetch_all(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND "
            "((last_analyze IS NULL AND last_autoanalyze IS NULL AND n_mod_since_analyze > 0) "
            "OR n_mod_since_analyze >= greatest(?, n_live_tup / 10))",
            (STATISTICS_MIN_CHANGES,),
        )
        for (table,) in stale:
            async with self.transaction() as transaction:
                # One process analyzes a table at a time; the others skip it this round.
                if await transaction.try_lock(f"analyze:{table}"):
                    await transaction.execute(f'ANALYZE "{table}"')

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._run(lambda c: c.fetchrow(postgres_sql(sql), *args))
        return row

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = await self._run(lambda c: c.fetch(postgres_sql(sql), *args))
        return rows

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._run(lambda c: c.execute(postgres_sql(sql), *args))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        with _postgres_errors():
            connection = await self._pool.acquire()
        error: BaseException | None = None
        try:
            with _postgres_errors():
                async with connection.transaction():
                    yield _PostgresTransaction(connection)
        except BaseException as exc:
            error = exc  # DatabaseUnavailable keeps the driver's error as its __cause__
            raise
        finally:
            self._pool.release(connection, error)

    def watch_keys(self) -> None:
        if self._key_watch is None:
            self._key_watch = _KeyWatch(self._dsn, self._timeout, self.execute)

    def keys_version(self) -> int | None:
        return None if self._key_watch is None else self._key_watch.version

    def keys_changed(self) -> None:
        if self._key_watch is not None:
            self._key_watch.changed()

    async def close(self) -> None:
        if self._key_watch is not None:
            await self._key_watch.stop()
            self._key_watch = None
        await self._pool.close()


async def open_database(settings: Settings) -> Database:
    """Connect to the database that ``settings.database_url`` names."""
    url = settings.database_url
    if is_postgres(url):
        return await PostgresDatabase.connect(url, settings)
    return SQLiteDatabase(
        sqlite_path(url), settings.sqlite_busy_timeout_ms, settings.database_timeout_seconds
    )
