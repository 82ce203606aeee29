"""The two database backends behind one small async interface.

SQL in this project is written once with ``?`` placeholders; the PostgreSQL backend rewrites it
to ``$1, $2, …`` once per statement text and caches the result. The hot path therefore runs
plain driver calls (sqlite3, asyncpg) with no query builder in between; the measurements that
led here are in ``docs/performance.md``.

Failures the client cannot fix (the database is down, locked or slow) surface as
:class:`DatabaseUnavailable`, which the HTTP layer renders as ``503 unavailable``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from overplane.settings import Settings

Row = Sequence[Any]


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or refused the connection."""


class Database(ABC):
    """A connection (pool) to one database, with the three calls the project needs."""

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
    async def close(self) -> None:
        """Release every connection."""

    async def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a trivial query."""
        await self.fetch_one("SELECT 1")


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
#: BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_TRANSIENT = frozenset({5, 6, 10, 13, 14, 15})


def _sqlite_error(exc: sqlite3.Error) -> Exception:
    """DatabaseUnavailable for a transient SQLite failure; the error itself otherwise."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _SQLITE_TRANSIENT:
        return DatabaseUnavailable(str(exc))
    return exc


class SQLiteDatabase(Database):
    """One sqlite3 connection in autocommit mode, called directly on the event loop.

    A point query takes microseconds, far less than handing it to a thread would cost. Each
    statement commits on its own; statements that must see one snapshot are written as one
    statement. WAL mode lets readers proceed while another process writes; ``busy_timeout``
    makes a writer wait for another process's lock instead of failing at once.
    """

    dialect = "sqlite"

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process; on power loss the
        # last transactions may roll back, but the file never corrupts (docs/deployment.md).
        self._connection.execute("PRAGMA synchronous = NORMAL")
        self._connection.execute("PRAGMA foreign_keys = ON")

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        try:
            cursor = self._connection.execute(sql, args)
            row: Row | None = cursor.fetchone()
            # A RETURNING statement commits only once its cursor is exhausted.
            cursor.fetchall()
            return row
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._connection.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        try:
            self._connection.execute(sql, args)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    async def close(self) -> None:
        self._connection.close()


_POSTGRES_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.AdminShutdownError,
)


class PostgresDatabase(Database):
    """An asyncpg connection pool."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._translated: dict[str, str] = {}

    @classmethod
    async def connect(cls, url: str, settings: Settings) -> PostgresDatabase:
        """Open a pool; raise :class:`DatabaseUnavailable` if the server cannot be reached."""
        try:
            pool = await asyncpg.create_pool(
                url.replace("postgres://", "postgresql://", 1),
                min_size=settings.pg_pool_min_size,
                max_size=max(settings.pg_pool_max_size, settings.pg_pool_min_size),
                command_timeout=settings.db_timeout_seconds,
                timeout=settings.db_timeout_seconds,
            )
        except _POSTGRES_DOWN as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool, settings.db_timeout_seconds)

    def _sql(self, sql: str) -> str:
        translated = self._translated.get(sql)
        if translated is None:
            parts = sql.split("?")
            translated = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
            self._translated[sql] = translated
        return translated

    async def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                row: Row | None = await connection.fetchrow(self._sql(sql), *args)
                return row
        except _POSTGRES_DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                rows: list[Row] = await connection.fetch(self._sql(sql), *args)
                return rows
        except _POSTGRES_DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                await connection.execute(self._sql(sql), *args)
        except _POSTGRES_DOWN as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._pool.close()


async def open_database(settings: Settings) -> Database:
    """Connect to the database that ``settings.database_url`` names."""
    url = settings.database_url
    if is_postgres(url):
        return await PostgresDatabase.connect(url, settings)
    return SQLiteDatabase(sqlite_path(url), settings.sqlite_busy_timeout_ms)
