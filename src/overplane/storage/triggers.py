"""Triggers that keep list totals exact and remember where deleted objects stood.

They run inside the transaction of every insert and delete, whoever writes (any server
process, a bulk loader, a migration), so the counters cannot drift: a crash rolls the counter
back with the write it counted. Migrations do not import this module: ``overplane migrations
new`` (storage/migration_writer.py) copies the statements below into the migration it writes,
as literals for both dialects. (``TRUNCATE`` bypasses triggers: do not truncate an object table
outside a test.)

Bulk loads must come in transactions of moderate size (say 10,000 rows): within one
transaction every row's counter update lengthens the same counter rows' version chains, so on
PostgreSQL a single million-row transaction slows down quadratically (seen in bench/scale.py).
API writes are one row per transaction and never meet this.
"""

from __future__ import annotations

from overplane.storage.schema import COUNTER_SLOTS

#: One trigger function that counts inserts and deletes of any table (it reads the table's
#: name) and, on a delete, records where the row stood. A random slot per row spreads
#: concurrent writers of one account over COUNTER_SLOTS counter rows.
POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION overplane_object_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO object_counts (table_name, account_id, livemode, slot, n)
        VALUES (TG_TABLE_NAME, NEW.account_id, NEW.livemode, floor(random() * {COUNTER_SLOTS})::int, 1)
        ON CONFLICT (table_name, account_id, livemode, slot)
        DO UPDATE SET n = object_counts.n + 1;
        RETURN NEW;
    END IF;
    INSERT INTO object_counts (table_name, account_id, livemode, slot, n)
    VALUES (TG_TABLE_NAME, OLD.account_id, OLD.livemode, floor(random() * {COUNTER_SLOTS})::int, -1)
    ON CONFLICT (table_name, account_id, livemode, slot)
    DO UPDATE SET n = object_counts.n - 1;
    INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)
    VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq,
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    RETURN OLD;
END
$$
"""

# SQLite has one writer at a time, so one counter row per account and mode is enough.
_SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _sqlite_triggers(table: str) -> list[str]:
    upsert = (
        "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
        "VALUES ('{table}', {row}.account_id, {row}.livemode, 0, {delta}) "
        "ON CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + {delta};"
    )
    tombstone = (
        " INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)"
        f" VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq, {_SQLITE_NOW_MS});"
    )
    return [
        f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} BEGIN "
        + upsert.format(table=table, row="NEW", delta=1)
        + " END",
        f"CREATE TRIGGER {table}_deleted AFTER DELETE ON {table} BEGIN "
        + upsert.format(table=table, row="OLD", delta=-1)
        + tombstone
        + " END",
    ]


def create_statements(table: str, dialect: str) -> list[str]:
    """The DDL that installs the triggers of one counted table (:data:`COUNTED_TABLES`):
    its counter and its tombstones."""
    if dialect == "postgresql":
        return [
            POSTGRES_FUNCTION,
            f"CREATE TRIGGER {table}_written AFTER INSERT OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION overplane_object_written()",
        ]
    return _sqlite_triggers(table)


def drop_statements(table: str, dialect: str) -> list[str]:
    """The DDL that removes what :func:`create_statements` installed for ``table``."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_written ON {table}"]
    return [f"DROP TRIGGER IF EXISTS {table}_inserted", f"DROP TRIGGER IF EXISTS {table}_deleted"]
