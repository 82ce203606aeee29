"""The migrated schema matches the declarations, migrating is idempotent, SQLite is set up for
concurrency, the list is served by its index, and migration 0002 backfills the counters and the
normalised ``scheduled_time`` of rows written before it.

Every test here runs on each backend through the session's migrated ``database_url`` (except the
SQLite file tests, which use a fresh file, and the backfill test, which migrates a fresh database
of either backend step by step). ``on_database`` (``migrate.run_with_connection``) starts its
own event loop for PostgreSQL, so these tests are plain synchronous functions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from starlette.testclient import TestClient

from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.schema import metadata
from tests.helpers import (
    NO_LIMITS,
    count_and_counter,
    in_process,
    index_names,
    on_database,
    sql,
    valid_body,
)

LIST_INDEX_COLUMNS = ["account_id", "livemode", "created_at", "seq"]


def differences(target: sa.MetaData) -> Callable[[sa.Connection], list[Any]]:
    """Alembic autogenerate's differences between the connected database and ``target``."""

    def work(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": migrate.server_default_comparison(
                    connection.dialect.name
                ),
            },
        )
        return list(compare_metadata(context, target))

    return work


def snapshot(connection: sa.Connection) -> dict[str, Any]:
    """Everything the inspector sees of the schema, and the recorded revision."""
    inspector = sa.inspect(connection)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
            ],
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "foreign_keys": [
                (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
                for fk in inspector.get_foreign_keys(name)
            ],
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            ),
        }
    revisions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return {"tables": tables, "revisions": [r[0] for r in revisions]}


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_current_head()


def test_migrated_database_matches_the_declared_metadata(database_url: str) -> None:
    """Autogenerate finds no difference between the migrations' schema and schema.metadata."""
    assert on_database(database_url, differences(metadata)) == []


def test_the_comparison_detects_drift(database_url: str) -> None:
    """The drift check can fail: a longer field or an extra column in the metadata is reported.

    This guards the test above: if type comparison were off, a changed ``max_length`` in a
    declaration without a migration would go unnoticed.
    """
    resource = RESOURCES[0]
    field = resource.fields[-1]
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        copy = table.to_metadata(drifted)
        if table.name == resource.table_name:
            copy.c[field.name].type = sa.String(field.max_length + 1)
            copy.append_column(sa.Column("drifted", sa.String(10), nullable=True))

    found = on_database(database_url, differences(drifted))

    added = [d for d in found if isinstance(d, tuple) and d[0] == "add_column"]
    modified = [m for d in found if isinstance(d, list) for m in d if m[0] == "modify_type"]
    assert len(found) == 2, found
    assert [(d[2], d[3].name) for d in added] == [(resource.table_name, "drifted")]
    assert [(m[2], m[3], m[6].length) for m in modified] == [
        (resource.table_name, field.name, field.max_length + 1)
    ]


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    """Running the migrations on an up-to-date database changes nothing and stays at head."""
    before = on_database(database_url, snapshot)
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
    after = on_database(database_url, snapshot)

    assert after == before
    assert after["revisions"] == [head_revision(database_url)]
    assert migrate.is_current(database_url)
    assert set(after["tables"]) >= {r.table_name for r in RESOURCES} | {"accounts", "api_keys"}


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.name for r in RESOURCES])
def test_list_index_exists_and_serves_the_list_order(database_url: str, resource: Resource) -> None:
    """Each object table has the list index, and the newest-first scoped query uses it unsorted."""
    table = resource.table_name
    query = (
        f"SELECT id FROM {table} WHERE account_id = :account AND livemode = :livemode "
        "ORDER BY created_at DESC, seq DESC LIMIT 20 OFFSET 5"
    )

    def inspect(connection: sa.Connection) -> tuple[list[Any], list[str]]:
        indexes = list(sa.inspect(connection).get_indexes(table))
        params = {"account": "acct_x", "livemode": False}
        if connection.dialect.name == "sqlite":
            rows = connection.execute(sa.text("EXPLAIN QUERY PLAN " + query), params).all()
            return indexes, [str(r[-1]) for r in rows]
        # Tables this small would be scanned, and the filter indexes cost about the same when
        # empty; ask whether the list index *can* serve the query without a sort.
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        connection.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
        connection.execute(sa.text("SET LOCAL enable_sort = off"))
        rows = connection.execute(sa.text("EXPLAIN " + query), params).all()
        return indexes, [str(r[0]) for r in rows]

    indexes, plan = on_database(database_url, inspect)

    by_name = {i["name"]: i for i in indexes}
    index_name = f"ix_{table}_list"
    assert index_name in by_name, by_name
    assert list(by_name[index_name]["column_names"]) == LIST_INDEX_COLUMNS
    text = "\n".join(plan)
    assert index_name in text, text
    assert "TEMP B-TREE" not in text, text  # SQLite: no sort step for ORDER BY
    assert "Sort" not in text, text  # PostgreSQL: no sort node


def journal_mode(database_url: str) -> str:
    """The journal mode of a SQLite database, as a new connection finds it."""
    return str(sql(database_url, "PRAGMA journal_mode")[0][0])


@pytest.mark.parametrize("busy_timeout_ms", [None, 4321])
def test_sqlite_opened_by_the_app_is_in_wal_mode_with_a_busy_timeout(
    tmp_sqlite_url: str, busy_timeout_ms: int | None
) -> None:
    """A fresh SQLite file is switched to WAL when the app opens it; the app waits on locks."""
    migrate.upgrade(tmp_sqlite_url)
    assert (
        journal_mode(tmp_sqlite_url) == "delete"
    )  # SQLite's default: the app must be what changes it

    settings = Settings(database_url=tmp_sqlite_url, access_log=False, **NO_LIMITS)
    if busy_timeout_ms is not None:
        settings = Settings(
            database_url=tmp_sqlite_url,
            access_log=False,
            sqlite_busy_timeout_ms=busy_timeout_ms,
            **NO_LIMITS,
        )
    app = OverplaneApp(settings)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.portal is not None
        assert app.db is not None
        timeout = client.portal.call(app.db.fetch_one, "PRAGMA busy_timeout")
        mode = client.portal.call(app.db.fetch_one, "PRAGMA journal_mode")
    assert timeout is not None
    assert mode is not None
    assert mode[0] == "wal"
    assert timeout[0] == settings.sqlite_busy_timeout_ms
    assert timeout[0] > 0
    assert journal_mode(tmp_sqlite_url) == "wal"  # persistent: every later connection uses WAL too


def test_every_declared_index_exists(database_url: str) -> None:
    """Every index of the declared metadata exists in the migrated database, by name.

    Alembic's comparison above skips expression indexes (the filter indexes on
    ``substr(field, 1, 100)``), so this check covers them.
    """
    declared = {index.name for table in metadata.tables.values() for index in table.indexes}

    assert declared - on_database(database_url, index_names) == set()


# --- migration 0002 on a database with rows --------------------------------------------------


OLD_ROWS: list[tuple[Resource, str, bool, str | None]] = [
    # resource, account, livemode, scheduled_time
    (APPOINTMENT, "acct_old_one", False, "2024-01-15T10:00:00+01:00"),
    (APPOINTMENT, "acct_old_one", False, "scheduled_time_example"),
    (APPOINTMENT, "acct_old_one", False, "2024-02-30T00:00:00Z"),
    (APPOINTMENT, "acct_old_one", True, "2024-01-15T09:00:00.123456Z"),
    (APPOINTMENT, "acct_old_two", False, "1999-12-31T23:00:00-01:00"),
    (APPOINTMENT, "acct_old_two", False, "2024-01-15T09:00:00Z"),
    (PARTY_LINK, "acct_old_one", False, None),
    (PARTY_LINK, "acct_old_one", False, None),
    (PARTY_LINK, "acct_old_two", True, None),
]

#: The normalised copy each scheduled_time above must get: epoch microseconds, or None.
OLD_SCHEDULED_US: dict[str, int | None] = {
    "2024-01-15T10:00:00+01:00": 1_705_309_200_000_000,
    "scheduled_time_example": None,
    "2024-02-30T00:00:00Z": None,
    "2024-01-15T09:00:00.123456Z": 1_705_309_200_123_456,
    "1999-12-31T23:00:00-01:00": 946_684_800_000_000,
    "2024-01-15T09:00:00Z": 1_705_309_200_000_000,
}


def insert_old_rows(database_url: str) -> list[str]:
    """Accounts and objects written with plain SQL at revision 0001; the ids, oldest first."""
    made: list[str] = []

    def work(connection: sa.Connection) -> None:
        for number, name in enumerate(("acct_old_one", "acct_old_two")):
            connection.execute(
                sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :name, 0)"),
                {"id": name, "name": f"old-{number}-{name}"},
            )
        for index, (resource, account, livemode, scheduled) in enumerate(OLD_ROWS):
            object_id = resource.id_prefix + secrets.token_hex(12)
            values: dict[str, Any] = {f.name: f.example for f in resource.required_fields}
            if scheduled is not None:
                values["scheduled_time"] = scheduled
            names = ["id", "account_id", "livemode", "created_at", "updated_at", *values]
            connection.execute(
                sa.text(
                    f"INSERT INTO {resource.table_name} ({', '.join(names)}) "
                    f"VALUES ({', '.join(':' + n for n in names)})"
                ),
                {
                    "id": object_id,
                    "account_id": account,
                    "livemode": livemode,
                    "created_at": 1_700_000_000_000 + index,
                    "updated_at": 1_700_000_000_000 + index,
                    **values,
                },
            )
            made.append(object_id)
        connection.commit()

    on_database(database_url, work)
    return made


def test_migration_0002_backfills_counters_and_scheduled_times(fresh_database_url: str) -> None:
    """Rows written before 0002 get counted and their parseable scheduled_time normalised; the
    API then gives exact totals, range filters and cursors over them, and keeps counting."""
    url = fresh_database_url
    config = migrate.alembic_config(url)
    command.upgrade(config, "0001")
    made = insert_old_rows(url)
    command.upgrade(config, "head")

    for resource in RESOURCES:
        for account in ("acct_old_one", "acct_old_two"):
            for livemode in (False, True):
                expected = sum(
                    1 for r, a, live, _ in OLD_ROWS if (r, a, live) == (resource, account, livemode)
                )
                assert count_and_counter(url, resource, account, livemode) == (expected, expected)
    for object_id, (resource, _, _, scheduled) in zip(made, OLD_ROWS, strict=True):
        if resource is APPOINTMENT:
            assert scheduled is not None
            row = sql(url, "SELECT scheduled_time__us FROM crm_appointment WHERE id = ?", object_id)
            assert row[0][0] == OLD_SCHEDULED_US[scheduled], scheduled

    with in_process(url) as server:
        old_one = server.new_caller("test", "old-0-acct_old_one")
        old_two = server.new_caller("test", "old-1-acct_old_two")
        appointments = [
            i
            for i, row in zip(made, OLD_ROWS, strict=True)
            if row[:3] == (APPOINTMENT, "acct_old_one", False)
        ]
        listed = old_one.get(APPOINTMENT.path).json()
        assert ([o["id"] for o in listed["data"]], listed["total"]) == (
            appointments[::-1],
            3,
        )
        nine = {
            "scheduled_time[gte]": "2024-01-15T09:00:00Z",
            "scheduled_time[lte]": "2024-01-15T09:00:00Z",
        }
        found = old_one.get(APPOINTMENT.path, params=nine).json()
        assert [o["id"] for o in found["data"]] == [appointments[0]]
        assert found["data"][0]["scheduled_time"] == "2024-01-15T10:00:00+01:00"
        # 1999-12-31T23:00:00-01:00 is midnight UTC, not an hour before it.
        midnight = "2000-01-01T00:00:00Z"
        assert old_two.total(APPOINTMENT, **{"scheduled_time[lte]": midnight}) == 1
        assert old_two.total(APPOINTMENT, **{"scheduled_time[lt]": midnight}) == 0

        # Triggers take over from the backfill without counting anything twice.
        assert old_one.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).status_code == 201
        assert old_one.delete(f"{APPOINTMENT.path}/{appointments[1]}").status_code == 200
        assert old_one.total(APPOINTMENT) == 3
        assert count_and_counter(url, APPOINTMENT, "acct_old_one", False) == (3, 3)
        after = old_one.get(APPOINTMENT.path, params={"starting_after": appointments[1]}).json()
        assert [o["id"] for o in after["data"]] == [appointments[0]]
        assert old_one.total(PARTY_LINK) == 2
