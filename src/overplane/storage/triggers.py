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

from overplane.storage.schema import COUNTED_TABLES, COUNTER_SLOTS


def _postgres_function(name: str, tombstone: str) -> str:
    """One trigger function that counts inserts and deletes of any table (it reads the
    table's name), and runs ``tombstone`` on a delete. A random slot per row spreads
    concurrent writers of one account over COUNTER_SLOTS counter rows."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
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
{tombstone}    RETURN OLD;
END
$$
"""


#: Object tables: counted, and a deleted object leaves its list position for cursors.
POSTGRES_FUNCTION = _postgres_function(
    "overplane_object_written",
    """    INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)
    VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq,
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
""",
)
#: Tables whose rows are never deleted one by one (events: only swept when they expire) are
#: counted without leaving tombstones.
POSTGRES_COUNT_FUNCTION = _postgres_function("overplane_row_counted", "")

# SQLite has one writer at a time, so one counter row per account and mode is enough.
_SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _sqlite_triggers(table: str, tombstones: bool) -> list[str]:
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
        + (tombstone if tombstones else "")
        + " END",
    ]


def create_statements(table: str, dialect: str) -> list[str]:
    """The DDL that installs the triggers of one counted table (:data:`COUNTED_TABLES`):
    counting, and for object tables the tombstones too."""
    tombstones = COUNTED_TABLES.get(table, True)  # a table not declared yet is an object table
    if dialect == "postgresql":
        function = "overplane_object_written" if tombstones else "overplane_row_counted"
        return [
            POSTGRES_FUNCTION if tombstones else POSTGRES_COUNT_FUNCTION,
            f"CREATE TRIGGER {table}_written AFTER INSERT OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        ]
    return _sqlite_triggers(table, tombstones)


def drop_statements(table: str, dialect: str) -> list[str]:
    """The DDL that removes what :func:`create_statements` installed for ``table``."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_written ON {table}"]
    return [f"DROP TRIGGER IF EXISTS {table}_inserted", f"DROP TRIGGER IF EXISTS {table}_deleted"]
