"""SQLite's group commit (``storage/database.py``, ``SQLiteDatabase``): the writes of one turn
of the event loop share one COMMIT, and each is answered only after it.

These are properties of the SQLite backend itself (PostgreSQL commits each statement or
transaction on its own), so they run on SQLite only, on a real database file with a scratch
schema; a second, independent sqlite3 connection plays another process reading the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from overplane.storage.database import SQLiteDatabase

SCHEMA = (
    "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    # Checked at COMMIT: a way to make a real commit fail.
    "CREATE TABLE parts (id INTEGER PRIMARY KEY, thing_id INTEGER NOT NULL "
    "REFERENCES things (id) DEFERRABLE INITIALLY DEFERRED)",
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A SQLite file with the scratch schema."""
    file = tmp_path / "group.sqlite3"
    with sqlite3.connect(file) as connection:
        for statement in SCHEMA:
            connection.execute(statement)
    return file


def committed_names(path: Path) -> set[str]:
    """What another connection (another process) sees: committed rows only."""
    with sqlite3.connect(path) as connection:
        return {name for (name,) in connection.execute("SELECT name FROM things")}


def count_commits(db: SQLiteDatabase) -> list[str]:
    """The COMMITs the backend runs from now on (sqlite3's trace of the statements run)."""
    commits: list[str] = []
    db._connection.set_trace_callback(
        lambda statement: commits.append(statement) if statement == "COMMIT" else None
    )
    return commits


def run(path: Path, scenario: object) -> None:
    """Run ``scenario(db)`` on a fresh backend for ``path`` and close it."""

    async def main() -> None:
        db = SQLiteDatabase(str(path), busy_timeout_ms=1000)
        try:
            await scenario(db)  # type: ignore[operator]
        finally:
            await db.close()

    asyncio.run(main())


def test_writes_of_one_turn_share_one_commit_and_are_answered_after_it(path: Path) -> None:
    """Twenty writes started together commit once; none is answered before the commit, and
    once answered, another connection sees it."""

    async def scenario(db: SQLiteDatabase) -> None:
        commits = count_commits(db)
        seen_before_answers: list[set[str]] = []

        async def write(number: int) -> None:
            await db.execute("INSERT INTO things (name) VALUES (?)", (f"t{number}",))
            assert f"t{number}" in committed_names(path)  # answered: committed

        async def look() -> None:
            # Runs after the writes have run their INSERTs, before their commit.
            seen_before_answers.append(committed_names(path))

        await asyncio.gather(*(write(n) for n in range(20)), look())
        assert seen_before_answers == [set()]
        assert len(commits) == 1
        assert committed_names(path) == {f"t{n}" for n in range(20)}

    run(path, scenario)


def test_a_failed_transaction_undoes_itself_alone(path: Path) -> None:
    """A transaction that fails halfway (after a write) is undone to its savepoint; the
    writes that shared its commit group stay."""

    async def scenario(db: SQLiteDatabase) -> None:
        async def failing() -> None:
            async with db.transaction() as transaction:
                await transaction.execute("INSERT INTO things (name) VALUES ('half')")
                raise RuntimeError("the handler failed after its first write")

        results = await asyncio.gather(
            db.execute("INSERT INTO things (name) VALUES ('before')"),
            failing(),
            db.execute("INSERT INTO things (name) VALUES ('after')"),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], RuntimeError)
        assert committed_names(path) == {"before", "after"}

    run(path, scenario)


def test_a_failed_statement_undoes_itself_alone(path: Path) -> None:
    """A statement that breaks a constraint fails; the others in its group commit."""

    async def scenario(db: SQLiteDatabase) -> None:
        results = await asyncio.gather(
            db.execute("INSERT INTO things (name) VALUES ('one')"),
            db.execute("INSERT INTO things (name) VALUES ('one')"),  # UNIQUE
            db.execute("INSERT INTO things (name) VALUES ('two')"),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert committed_names(path) == {"one", "two"}

    run(path, scenario)


def test_a_failed_commit_fails_every_write_and_read_of_its_group(path: Path) -> None:
    """When the COMMIT itself fails (here a deferred foreign key, checked at commit), every
    write of the group gets the error, so does a read that ran inside the group (it may have
    seen those writes), nothing of the group is kept, and the next write commits normally."""

    async def scenario(db: SQLiteDatabase) -> None:
        async def read() -> object:
            return await db.fetch_all("SELECT name FROM things")

        results = await asyncio.gather(
            db.execute("INSERT INTO things (name) VALUES ('lost')"),
            db.execute("INSERT INTO parts (thing_id) VALUES (12345)"),  # no such thing
            read(),
            return_exceptions=True,
        )
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        assert committed_names(path) == set()
        await db.execute("INSERT INTO things (name) VALUES ('kept')")
        assert committed_names(path) == {"kept"}

    run(path, scenario)


def test_a_read_with_no_group_open_runs_at_once(path: Path) -> None:
    """A read when nothing is being written neither opens a transaction nor waits."""

    async def scenario(db: SQLiteDatabase) -> None:
        await db.execute("INSERT INTO things (name) VALUES ('x')")
        commits = count_commits(db)
        assert await db.fetch_all("SELECT name FROM things") == [("x",)]
        assert not db._connection.in_transaction
        assert commits == []

    run(path, scenario)


def test_a_cancelled_writer_does_not_cancel_the_commit_of_the_others(path: Path) -> None:
    """A request that goes away while waiting for its group's commit (a client hanging up)
    leaves the commit to happen for the others; its own write, already in the group, is
    committed too (as it would be had it disconnected a moment later)."""

    async def scenario(db: SQLiteDatabase) -> None:
        first = asyncio.ensure_future(db.execute("INSERT INTO things (name) VALUES ('a')"))
        second = asyncio.ensure_future(db.execute("INSERT INTO things (name) VALUES ('b')"))
        await asyncio.sleep(0)  # both have run their INSERT and wait for the commit
        first.cancel()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        assert committed_names(path) == {"a", "b"}

    run(path, scenario)
