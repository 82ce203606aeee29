"""A schema that can be sharded by account, and by-id statements that never need statistics.

- Every table holding an account's data has ``account_id`` leading its primary key and every
  unique constraint (the rule a distributed PostgreSQL such as Citus needs, distribution
  column ``account_id``); the exceptions are named in ``schema.REFERENCE_TABLES``.
- Every by-id statement is planned on the primary key with no statistics at all and with
  ``plan_cache_mode = force_generic_plan`` (what a prepared statement gets after five runs),
  on a table of thousands of rows in one account.
- Migration 0005, which moved the keys, keeps every row of a database filled before it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command

from overplane.declarations import APPOINTMENT, RESOURCES, Resource
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import (
    STATISTICS_MIN_CHANGES,
    Database,
    is_postgres,
    open_database,
    postgres_sql,
)
from overplane.storage.objects import ObjectStore
from overplane.storage.schema import REFERENCE_TABLES, metadata
from overplane.storage.tenant import Tenant
from tests.helpers import in_process, on_database, valid_body

#: Rows in the one account whose plans are checked: enough that a scan would cost visibly
#: more than the index, had the planner any reason to choose it.
ROWS = 3000


def test_account_id_leads_every_key_of_an_accounts_data() -> None:
    for table in metadata.tables.values():
        if table.name in REFERENCE_TABLES:
            continue
        keys = [list(table.primary_key.columns.keys())]
        keys += [
            [c.name for c in constraint.columns]
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ]
        keys += [[c.name for c in index.columns] for index in table.indexes if index.unique]
        keys += [[column.name] for column in table.columns if column.unique]
        for key in keys:
            assert key[0] == "account_id", f"{table.name}: {key} does not lead with account_id"
    # The reference tables are small and hold no object data; every object table is sharded.
    assert {"accounts", "api_keys"} == REFERENCE_TABLES
    assert {r.table_name for r in RESOURCES}.isdisjoint(REFERENCE_TABLES)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _arguments(name: str, object_id: str, tenant: Tenant) -> list[Any]:
    """Arguments for one of ObjectStore.by_id_statements(), in placeholder order."""
    by_id = [object_id, *tenant.args]
    return {
        "retrieve": by_id,
        "update": ["value", 1, 1, *by_id],
        "update_if_match": ["value", 1, 1, *by_id, 1],
        "delete": by_id,
        "delete_if_match": [*by_id, 1],
        "position": by_id * 2,
    }[name]


async def _fill(url: str, resource: Resource, tenant: Tenant) -> str:
    """ROWS objects in ``tenant`` through the storage layer; the id of one in the middle."""
    db = await open_database(Settings(database_url=url, access_log=False))
    store = ObjectStore(resource)
    values = valid_body(resource)
    try:
        ids = [(await store.create(db, tenant, values)).id for _ in range(ROWS)]
    finally:
        await db.close()
    return ids[ROWS // 2]


async def _postgres_plans(
    url: str, statements: dict[str, str], object_id: str, tenant: Tenant
) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        for table in [*(r.table_name for r in RESOURCES), "object_tombstones"]:
            analysed = await connection.fetchval(
                "SELECT count(*) FROM pg_stats WHERE tablename = $1", table
            )
            assert analysed == 0, f"{table} has statistics: the test must run without them"
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        plans = {}
        for name, sql in statements.items():
            await connection.execute(f"PREPARE {name} AS {postgres_sql(sql)}")
            arguments = ", ".join(_literal(a) for a in _arguments(name, object_id, tenant))
            rows = await connection.fetch(f"EXPLAIN EXECUTE {name}({arguments})")
            plans[name] = "\n".join(row[0] for row in rows)
        return plans
    finally:
        await connection.close()


def _sqlite_plans(
    url: str, statements: dict[str, str], object_id: str, tenant: Tenant
) -> dict[str, str]:
    def work(connection: sa.Connection) -> dict[str, str]:
        # SQLite has statistics here (the server runs a sampled ANALYZE when it opens the
        # file); its planner takes a fully matched unique index whatever they say.
        raw = connection.connection.driver_connection
        assert raw is not None
        return {
            name: "\n".join(
                str(row[-1])
                for row in raw.execute(
                    "EXPLAIN QUERY PLAN " + sql, _arguments(name, object_id, tenant)
                )
            )
            for name, sql in statements.items()
        }

    return on_database(url, work)


@pytest.mark.slow
@pytest.mark.parametrize("resource", RESOURCES, ids=[r.name for r in RESOURCES])
def test_by_id_statements_use_the_primary_key_without_statistics(
    fresh_database_url: str, resource: Resource
) -> None:
    url = fresh_database_url
    migrate.upgrade(url)
    account = f"acct_{secrets.token_hex(6)}"

    def add_account(connection: sa.Connection) -> None:
        connection.execute(
            sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :id, 0)"),
            {"id": account},
        )
        if connection.dialect.name == "postgresql":  # no autovacuum will analyse behind us
            for table in [resource.table_name, "object_tombstones"]:
                connection.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = off)"))
        connection.commit()

    on_database(url, add_account)
    tenant = Tenant(account, False)
    object_id = asyncio.run(_fill(url, resource, tenant))
    statements = ObjectStore(resource).by_id_statements()
    if is_postgres(url):
        plans = asyncio.run(_postgres_plans(url, statements, object_id, tenant))
    else:
        plans = _sqlite_plans(url, statements, object_id, tenant)

    table = resource.table_name
    for name, plan in plans.items():
        if is_postgres(url):
            assert f"using {table}_pkey on {table}" in plan, f"{name}:\n{plan}"
            assert "Seq Scan" not in plan, f"{name}:\n{plan}"
            assert "ix_" not in plan, f"{name}:\n{plan}"
        else:
            assert (
                f"{table} USING INDEX sqlite_autoindex_{table}_1 (account_id=? AND id=?)" in plan
            ), f"{name}:\n{plan}"
            assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), f"{name}:\n{plan}"
        if name == "position":
            tombstones = (
                "object_tombstones_pkey"
                if is_postgres(url)
                else "sqlite_autoindex_object_tombstones_1"
            )
            assert tombstones in plan, f"{name}:\n{plan}"


def _snapshot(url: str) -> dict[str, Any]:
    """Every row of every table that 0005 rebuilds or re-keys, in a stable order."""

    def work(connection: sa.Connection) -> dict[str, Any]:
        tables = [*(r.table_name for r in RESOURCES), "object_counts", "object_tombstones"]
        found: dict[str, Any] = {}
        for table in tables:
            columns = sorted(c["name"] for c in sa.inspect(connection).get_columns(table))
            rows = connection.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table}"))
            found[table] = sorted(tuple(map(str, row)) for row in rows)
        return found

    return on_database(url, work)


def _max_seq(url: str, table: str) -> int:
    def work(connection: sa.Connection) -> int:
        return int(connection.execute(sa.text(f"SELECT max(seq) FROM {table}")).scalar_one())

    return on_database(url, work)


@pytest.mark.slow
def test_migration_0005_keeps_every_row(fresh_database_url: str) -> None:
    """A database filled through the API before 0005 comes out of it with every object,
    counter and tombstone; seq goes on from where it stood; the API works over the old rows."""
    url = fresh_database_url
    config = migrate.alembic_config(url)
    command.upgrade(config, "0004")
    account = f"acct_{secrets.token_hex(6)}"
    names: dict[str, list[str]] = {}

    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :id, 0)"),
            {"id": account},
        )
        for resource in RESOURCES:
            body = valid_body(resource)
            columns = ["id", "account_id", "livemode", "created_at", "updated_at", *body]
            for index in range(30):
                object_id = f"{resource.id_prefix}old{index:04d}"
                names.setdefault(resource.name, []).append(object_id)
                values = {
                    "id": object_id,
                    "account_id": account,
                    "livemode": index % 3 == 0,
                    "created_at": 1_700_000_000_000 + index // 2,  # ties broken by seq
                    "updated_at": 1_700_000_000_000 + index,
                    **body,
                }
                connection.execute(
                    sa.text(
                        f"INSERT INTO {resource.table_name} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(':' + c for c in columns)})"
                    ),
                    values,
                )
            connection.execute(
                sa.text(f"DELETE FROM {resource.table_name} WHERE id = :id"),
                {"id": f"{resource.id_prefix}old0007"},
            )
        connection.commit()

    on_database(url, fill)
    before = _snapshot(url)
    command.upgrade(config, "head")
    assert _snapshot(url) == before

    with in_process(url) as server:
        caller = server.new_caller("test", account)
        for resource in RESOURCES:
            old_seq = _max_seq(url, resource.table_name)
            test_mode = [i for n, i in enumerate(names[resource.name]) if n % 3 and n != 7]
            listed = caller.get(resource.path, params={"limit": 100}).json()
            assert [o["id"] for o in listed["data"]] == test_mode[::-1]
            assert listed["total"] == len(test_mode)
            # A cursor naming the object deleted before the upgrade still has its place.
            deleted = f"{resource.id_prefix}old0007"
            after = caller.get(resource.path, params={"starting_after": deleted}).json()
            assert [o["id"] for o in after["data"]] == [i for i in test_mode[::-1] if i < deleted]
            created = caller.post(resource.path, json=valid_body(resource))
            assert created.status_code == 201, created.text
            assert _max_seq(url, resource.table_name) == old_seq + 1
            listed = caller.get(resource.path, params={"limit": 1}).json()
            assert listed["data"][0]["id"] == created.json()["id"]
            assert listed["total"] == len(test_mode) + 1


@pytest.mark.slow
def test_the_server_analyzes_tables_that_changed(fresh_database_url: str) -> None:
    """Nothing else may gather statistics (autovacuum off, SQLite): after enough writes the
    server's own check analyzes the table."""
    url = fresh_database_url
    migrate.upgrade(url)
    account = f"acct_{secrets.token_hex(6)}"
    tenant = Tenant(account, False)

    async def analyzed(db: Database) -> bool:
        if db.dialect == "postgresql":
            sql = (
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname = 'crm_appointment'"
            )
        else:
            sql = "SELECT count(*) > 0 FROM sqlite_stat1 WHERE tbl = 'crm_appointment'"
        row = await db.fetch_one(sql)
        return row is not None and bool(row[0])

    async def write_then_refresh(rows: int) -> bool:
        db = await open_database(Settings(database_url=url, access_log=False))
        store = ObjectStore(APPOINTMENT)
        try:
            for _ in range(rows):
                await store.create(db, tenant, valid_body(APPOINTMENT))
            # PostgreSQL's activity counters reach pg_stat_user_tables within about a second
            # of the writes; the server checks every OVERPLANE_STATISTICS_INTERVAL_SECONDS.
            for _ in range(50):
                await db.refresh_statistics()
                if await analyzed(db):
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await db.close()

    def add_account(connection: sa.Connection) -> None:
        connection.execute(
            sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :id, 0)"),
            {"id": account},
        )
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("ALTER TABLE crm_appointment SET (autovacuum_enabled = off)")
            )
        connection.commit()

    on_database(url, add_account)
    assert asyncio.run(write_then_refresh(STATISTICS_MIN_CHANGES))
