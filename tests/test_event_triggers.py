"""How each backend writes a change's event in the statement that makes the change.

SQLite does it with temporary triggers of the serving connection (``storage/database.py``,
``SQLiteDatabase``, "Events"), fed by ``overplane_event(i)`` while a recorded write runs; the
HTTP tests (test_events.py) prove what the events hold. These tests pin the parts the HTTP
tests cannot reach: a rollback that takes a trigger's creation back, writes made without an
origin on a connection whose triggers are installed, and the JSON of rows wider than one SQL
function call takes (on both backends).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from overplane.declarations import APPOINTMENT
from overplane.storage import migrate
from overplane.storage.database import SQLiteDatabase, sqlite_path
from overplane.storage.events import EventOrigin
from overplane.storage.keys import insert_account
from overplane.storage.objects import ObjectStore, _PostgresEventStatements, _sqlite_json
from overplane.storage.tenant import Tenant

TENANT = Tenant("acct_triggers", False)
ORIGIN = EventOrigin("req_triggers", "key-1")
VALUES = {"customer_name": "Ada", "scheduled_time": "2030-01-01T09:00:00Z", "status": "draft"}


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


def on_migrated_sqlite(
    tmp_path: Path, scenario: Callable[[SQLiteDatabase, ObjectStore], Awaitable[None]]
) -> sqlite3.Connection:
    """Run ``scenario`` on a fresh migrated SQLite file; another connection to it after."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    migrate.upgrade(url)

    async def main() -> None:
        db = SQLiteDatabase(sqlite_path(url), busy_timeout_ms=1000)
        try:
            await insert_account(db, TENANT.account_id, "triggers", 1)
            await scenario(db, ObjectStore(APPOINTMENT))
        finally:
            await db.close()

    asyncio.run(main())
    return sqlite3.connect(sqlite_path(url))


def test_a_trigger_whose_creation_was_rolled_back_is_installed_again(tmp_path: Path) -> None:
    """The first recorded write installs its trigger inside a transaction that then fails:
    the rollback takes the trigger with it, and the next write must still get its event."""
    created: list[str] = []

    async def scenario(db: SQLiteDatabase, store: ObjectStore) -> None:
        async def rolled_back() -> None:
            async with db.transaction() as transaction:
                await store.create(transaction, TENANT, VALUES, ORIGIN)
                raise Boom

        with pytest.raises(Boom):
            await rolled_back()
        created.append((await store.create(db, TENANT, VALUES, ORIGIN)).id)

    other = on_migrated_sqlite(tmp_path, scenario)
    rows = other.execute("SELECT object_id, type, request_id, idempotency_key FROM events")
    assert rows.fetchall() == [(created[0], "appointment.created", "req_triggers", "key-1")]


def test_writes_without_an_origin_record_nothing_once_the_triggers_are_installed(
    tmp_path: Path,
) -> None:
    """Events off (no origin) on a connection whose triggers exist: no event, no delivery."""
    ids: list[str] = []

    async def scenario(db: SQLiteDatabase, store: ObjectStore) -> None:
        recorded = await store.create(db, TENANT, VALUES, ORIGIN)
        await store.update(db, TENANT, recorded.id, {"status": "confirmed"}, origin=ORIGIN)
        await store.delete(db, TENANT, recorded.id, origin=ORIGIN)
        quiet = await store.create(db, TENANT, VALUES)
        await store.update(db, TENANT, quiet.id, {"status": "confirmed"})
        await store.delete(db, TENANT, quiet.id)
        ids.extend((recorded.id, quiet.id))

    other = on_migrated_sqlite(tmp_path, scenario)
    rows = other.execute("SELECT object_id, type FROM events ORDER BY seq").fetchall()
    assert rows == [
        (ids[0], "appointment.created"),
        (ids[0], "appointment.updated"),
        (ids[0], "appointment.deleted"),
    ]
    # The event triggers were the serving connection's own: the file keeps none of them.
    stored = other.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    assert stored
    assert not [name for (name,) in stored if name.endswith("_event")]


#: Wider than one SQL function call takes (SQLite 127 arguments, PostgreSQL 100), with nulls.
WIDE = tuple(f"c{n}" for n in range(130))
WIDE_ROW = {name: (None if n % 3 == 0 else f"v{n}") for n, name in enumerate(WIDE)}


def test_the_json_of_a_wide_row_keeps_every_column_and_its_nulls(database_url: str) -> None:
    """The event's JSON of a row with 130 columns, a third of them NULL, on each backend."""
    columns = ", ".join(f"{name} text" for name in WIDE)
    placeholders = ", ".join("?" * len(WIDE))
    values = list(WIDE_ROW.values())
    if database_url.startswith("sqlite"):
        with sqlite3.connect(":memory:") as connection:
            connection.execute(f"CREATE TABLE wide ({columns})")
            connection.execute(f"INSERT INTO wide VALUES ({placeholders})", values)
            (text,) = connection.execute(f"SELECT {_sqlite_json('w', WIDE)} FROM wide AS w")
            built = text[0]
    else:

        async def build() -> str:
            connection = await asyncpg.connect(database_url)
            try:
                await connection.execute(f"CREATE TEMP TABLE wide ({columns})")
                numbered = ", ".join(f"${n + 1}" for n in range(len(WIDE)))
                await connection.execute(f"INSERT INTO wide VALUES ({numbered})", *values)
                sql = _PostgresEventStatements("wide", WIDE, WIDE, "").json_of("w", WIDE)
                result: str = await connection.fetchval(f"SELECT {sql} FROM wide AS w")
                return result
            finally:
                await connection.close()

        built = asyncio.run(build())
    assert json.loads(built) == WIDE_ROW
