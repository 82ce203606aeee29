"""The database statement timeout (``OVERPLANE_DATABASE_TIMEOUT``): a stuck statement is a
prompt ``503 unavailable``, never a hung request, on both backends.

Statements are made slow honestly: another connection (another process, as far as the server
can tell) holds a lock the request needs (PostgreSQL: ``LOCK TABLE`` in an open transaction;
SQLite: the write lock, ``BEGIN IMMEDIATE``), or, on SQLite, the statement itself never ends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import asyncpg
import pytest

from overplane.declarations import RESOURCES
from overplane.settings import Settings, SettingsError
from overplane.storage import migrate
from overplane.storage.database import (
    DatabaseUnavailable,
    SQLiteDatabase,
    is_postgres,
    sqlite_path,
)
from tests.helpers import assert_error, in_process, valid_body

TIMEOUT = 1.0
#: The longest a request stuck behind a lock may take: the timeout, plus slack for a busy
#: machine (the driver's own timeout is half a second behind the server's).
ANSWER_WITHIN = TIMEOUT + 1.5
APPOINTMENT = RESOURCES[-1]


# --- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"), [("10", 10.0), ("2.5", 2.5), ("3s", 3.0), ("500ms", 0.5), (" 1S ", 1.0)]
)
def test_the_timeout_takes_seconds_or_milliseconds(raw: str, seconds: float) -> None:
    settings = Settings.from_environ({"OVERPLANE_DATABASE_TIMEOUT": raw})
    assert settings.database_timeout_seconds == seconds


@pytest.mark.parametrize("raw", ["0", "-1", "ten", "nan", "inf", "100000", "5m"])
def test_a_bad_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="OVERPLANE_DATABASE_TIMEOUT"):
        Settings.from_environ({"OVERPLANE_DATABASE_TIMEOUT": raw})


def test_the_former_name_is_still_read_and_the_new_one_wins() -> None:
    """Deployments that set ``OVERPLANE_DB_TIMEOUT_SECONDS`` keep their timeout."""
    former = {"OVERPLANE_DB_TIMEOUT_SECONDS": "2"}
    assert Settings.from_environ(former).database_timeout_seconds == 2.0
    both = {**former, "OVERPLANE_DATABASE_TIMEOUT": "3"}
    assert Settings.from_environ(both).database_timeout_seconds == 3.0
    with pytest.raises(SettingsError, match="OVERPLANE_DB_TIMEOUT_SECONDS='x'"):
        Settings.from_environ({"OVERPLANE_DB_TIMEOUT_SECONDS": "x"})
    assert Settings().database_timeout_seconds == 10.0


# --- SQLite: a statement that runs too long --------------------------------------------------

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


def run_on(path: Path, scenario: object, timeout: float = 0.3) -> None:
    """Run ``scenario(db)`` on a SQLite backend for ``path`` with ``timeout``, then close."""

    async def main() -> None:
        db = SQLiteDatabase(str(path), busy_timeout_ms=5000, timeout=timeout)
        try:
            await scenario(db)  # type: ignore[operator]
        finally:
            await db.close()

    asyncio.run(main())


def test_sqlite_interrupts_a_statement_past_the_timeout(tmp_path: Path) -> None:
    """A statement that would never end is interrupted just after the timeout, as
    DatabaseUnavailable; the connection serves the next statement normally."""

    async def scenario(db: SQLiteDatabase) -> None:
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="longer than the database timeout"):
            await db.fetch_one(ENDLESS)
        assert 0.3 <= time.monotonic() - began < 0.3 + 0.5
        assert await db.fetch_one("SELECT 1") == (1,)

    run_on(tmp_path / "endless.sqlite3", scenario)


def test_sqlite_an_interrupted_write_fails_its_whole_commit_group(tmp_path: Path) -> None:
    """A write interrupted inside a commit group takes the group back (SQLite rolls back the
    transaction): every writer of the group gets the error, nothing of it is committed, and
    the next write commits normally. No write is acknowledged and then lost."""
    path = tmp_path / "group.sqlite3"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")

    async def scenario(db: SQLiteDatabase) -> None:
        slow = (
            "INSERT INTO things (name) SELECT 'slow' || x FROM "
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)"
        )
        outcomes = await asyncio.gather(
            db.execute("INSERT INTO things (name) VALUES ('quick')"),
            db.execute(slow),
            return_exceptions=True,
        )
        assert [type(outcome) for outcome in outcomes] == [DatabaseUnavailable] * 2, outcomes
        assert await db.fetch_all("SELECT name FROM things") == []
        await db.execute("INSERT INTO things (name) VALUES ('after')")

    run_on(path, scenario)
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT name FROM things").fetchall() == [("after",)]


def test_sqlite_busy_timeout_is_at_most_the_database_timeout(tmp_path: Path) -> None:
    async def scenario(db: SQLiteDatabase) -> None:
        assert await db.fetch_one("PRAGMA busy_timeout") == (300,)

    run_on(tmp_path / "busy.sqlite3", scenario)


# --- Both backends: a request stuck behind another connection's lock -------------------------


@contextmanager
def lock_held(database_url: str, table: str) -> Iterator[None]:
    """Another connection holds a lock the server needs, for the duration of the block.

    PostgreSQL: ``LOCK TABLE`` (access exclusive: even reads wait) in an open transaction;
    SQLite: the write lock (``BEGIN IMMEDIATE``: writes wait, reads go on in WAL mode)."""
    if not is_postgres(database_url):
        with closing(sqlite3.connect(sqlite_path(database_url), isolation_level=None)) as side:
            side.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                side.execute("ROLLBACK")
        return
    locked, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            async with connection.transaction():
                await connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.to_thread(release.wait)
        finally:
            await connection.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            locked.set()

    holder = threading.Thread(target=run, name="lock-holder")
    holder.start()
    try:
        assert locked.wait(10)
        assert not failure, failure
        yield
    finally:
        release.set()
        holder.join(10)


def timed_status(send: object, *args: object, **kwargs: object) -> tuple[float, object]:
    began = time.monotonic()
    response = send(*args, **kwargs)  # type: ignore[operator]
    return time.monotonic() - began, response


def test_a_request_behind_a_lock_gets_a_prompt_503(database_url: str) -> None:
    """With another connection holding the lock a create needs (and, on PostgreSQL, a
    retrieve too), the request waits about one timeout and gets 503 unavailable with
    Retry-After, not a hang; once the lock is gone, the same server serves again."""
    with in_process(database_url, database_timeout_seconds=TIMEOUT) as server:
        api = server.new_caller()
        created = api.create(APPOINTMENT)
        location = f"{APPOINTMENT.path}/{created['id']}"
        stuck = [("POST", APPOINTMENT.path, {"json": valid_body(APPOINTMENT)})]
        if is_postgres(database_url):
            stuck.append(("GET", location, {}))
        with lock_held(database_url, APPOINTMENT.table_name):
            for method, path, kwargs in stuck:
                elapsed, response = timed_status(api.request, method, path, **kwargs)
                assert_error(response, 503, "unavailable")  # type: ignore[arg-type]
                assert response.headers["retry-after"].isdigit()  # type: ignore[attr-defined]
                print(f"\n{method} behind a lock: 503 after {elapsed:.2f} s (timeout {TIMEOUT} s)")
                # It really waited for the lock, and no longer than the timeout allows.
                assert TIMEOUT * 0.9 <= elapsed < ANSWER_WITHIN, (method, elapsed)
            if not is_postgres(database_url):  # WAL: readers never wait for the writer
                assert api.get(location).status_code == 200
        assert api.get(location).json() == created
        assert api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).status_code == 201


def test_every_connection_carries_the_timeout(database_url: str) -> None:
    """PostgreSQL: every pooled connection has ``statement_timeout`` set, so the database
    cancels a statement past it itself (releasing the locks it holds or queues for, even if
    the server process is gone). SQLite: the busy timeout is the same bound."""
    migrate.upgrade(database_url)
    with in_process(database_url, database_timeout_seconds=2.5) as server:
        db = server.app.db
        assert db is not None
        if is_postgres(database_url):
            row = server.run(db.fetch_one, "SELECT current_setting('statement_timeout')")
            assert row[0] == "2500ms"
        else:
            assert server.run(db.fetch_one, "PRAGMA busy_timeout") == (2500,)
