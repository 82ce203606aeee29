"""account_id leads the primary key of every table that holds an account's data.

Object tables: primary key (account_id, id) instead of seq, and no separate unique id;
seq becomes an identity column on PostgreSQL (it was a serial) and a plain column that each
insert fills on SQLite. object_counts: (account_id, table_name, livemode, slot).
object_tombstones: (account_id, id). So a distributed PostgreSQL (Citus, distribution column
account_id) takes the schema unchanged (docs/deployment.md, "Beyond one database").

PostgreSQL changes the constraints in place. SQLite cannot change a primary key, so each table
is rebuilt: created anew, filled in seq order (so seq still grows with rowid), the old one
dropped (with its indexes and triggers), the new one renamed, indexes and triggers created
again. Every value here is spelled out: this file imports nothing of the project.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Each object table's fields with their maximum lengths, and its time-range columns.
OBJECT_TABLES: dict[str, tuple[dict[str, int], tuple[str, ...]]] = {
    "accounts_party_link": (
        {
            "primary_role": 1000,
            "secondary_role": 1000,
            "primary_party": 1000,
            "secondary_party": 1000,
        },
        (),
    ),
    "crm_appointment": (
        {
            "customer_name": 1000,
            "customer_phone_number": 1000,
            "customer_skype": 1000,
            "customer_details": 65535,
            "scheduled_time": 1000,
            "status": 1000,
            "calendar_event": 1000,
            "customer_email": 1000,
            "appointment_with": 1000,
            "party": 1000,
        },
        ("scheduled_time__us",),
    ),
}
FILTER_PREFIX = 100
SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _sqlite_triggers(table: str) -> list[str]:
    """The counting and tombstone triggers of one object table, as migration 0002 made them."""
    upsert = (
        "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
        f"VALUES ('{table}', {{row}}.account_id, {{row}}.livemode, 0, {{delta}}) "
        "ON CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + {delta};"
    )
    return [
        f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} BEGIN "
        + upsert.format(row="NEW", delta=1)
        + " END",
        f"CREATE TRIGGER {table}_deleted AFTER DELETE ON {table} BEGIN "
        + upsert.format(row="OLD", delta=-1)
        + " INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)"
        f" VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq, {SQLITE_NOW_MS});"
        " END",
    ]


def _object_columns(fields: dict[str, int], times: tuple[str, ...]) -> list[sa.Column[Any]]:
    return [
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.String(length), nullable=True) for name, length in fields.items()),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in times),
    ]


def _object_indexes(table: str, fields: dict[str, int], times: tuple[str, ...]) -> None:
    scope = ["account_id", "livemode"]
    op.create_index(f"ix_{table}_list", table, [*scope, "created_at", "seq"])
    op.create_index(f"ix_{table}_updated_at", table, [*scope, "updated_at"])
    for name in fields:
        prefix = sa.text(f"substr({name}, 1, {FILTER_PREFIX})")
        op.create_index(f"ix_{table}_{name}", table, [*scope, prefix, "created_at", "seq"])
    for name in times:
        op.create_index(f"ix_{table}_{name}", table, [*scope, name])


def _rebuild_sqlite(
    table: str,
    columns: list[sa.Column[Any]],
    primary_key: list[str],
    order_by: str | None = None,
) -> None:
    """Recreate ``table`` with ``primary_key``, keeping every row (SQLite only)."""
    names = ", ".join(column.name for column in columns)
    op.create_table(f"_new_{table}", *columns, sa.PrimaryKeyConstraint(*primary_key))
    ordered = f" ORDER BY {order_by}" if order_by else ""
    op.execute(f"INSERT INTO _new_{table} ({names}) SELECT {names} FROM {table}{ordered}")
    op.drop_table(table)
    op.rename_table(f"_new_{table}", table)


def _upgrade_sqlite() -> None:
    # Triggers first: renaming a table makes SQLite re-read every trigger, and these name
    # tables that are being rebuilt.
    for table in OBJECT_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_inserted")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_deleted")
    _rebuild_sqlite(
        "object_counts",
        [
            sa.Column("account_id", sa.String(64), nullable=False),
            sa.Column("table_name", sa.String(64), nullable=False),
            sa.Column("livemode", sa.Boolean(), nullable=False),
            sa.Column("slot", sa.SmallInteger(), nullable=False),
            sa.Column("n", sa.BigInteger(), nullable=False),
        ],
        ["account_id", "table_name", "livemode", "slot"],
    )
    _rebuild_sqlite(
        "object_tombstones",
        [
            sa.Column("account_id", sa.String(64), nullable=False),
            sa.Column("id", sa.String(64), nullable=False),
            sa.Column("livemode", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("deleted_at", sa.BigInteger(), nullable=False),
        ],
        ["account_id", "id"],
    )
    op.create_index("ix_object_tombstones_deleted_at", "object_tombstones", ["deleted_at"])
    for table, (fields, times) in OBJECT_TABLES.items():
        # In seq order, so that the new rowids grow with seq (inserts read the last row's seq).
        _rebuild_sqlite(table, _object_columns(fields, times), ["account_id", "id"], "seq")
        _object_indexes(table, fields, times)
        for statement in _sqlite_triggers(table):
            op.execute(statement)


def _upgrade_postgres() -> None:
    for table in OBJECT_TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_id_key")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (account_id, id)")
        # serial -> identity: the same numbers go on from where the serial stood.
        op.execute(f"ALTER TABLE {table} ALTER COLUMN seq DROP DEFAULT")
        op.execute(f"DROP SEQUENCE IF EXISTS {table}_seq_seq")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY")
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), "
            f"coalesce((SELECT max(seq) FROM {table}), 0) + 1, false)"
        )
    op.execute("ALTER TABLE object_counts DROP CONSTRAINT object_counts_pkey")
    op.execute(
        "ALTER TABLE object_counts ADD CONSTRAINT object_counts_pkey "
        "PRIMARY KEY (account_id, table_name, livemode, slot)"
    )
    op.execute("ALTER TABLE object_tombstones DROP CONSTRAINT object_tombstones_pkey")
    op.execute(
        "ALTER TABLE object_tombstones ADD CONSTRAINT object_tombstones_pkey "
        "PRIMARY KEY (account_id, id)"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        raise NotImplementedError(
            "0005 is not reversible on SQLite: restore the backup taken before upgrading"
        )
    op.execute("ALTER TABLE object_tombstones DROP CONSTRAINT object_tombstones_pkey")
    op.execute(
        "ALTER TABLE object_tombstones ADD CONSTRAINT object_tombstones_pkey PRIMARY KEY (id)"
    )
    op.execute("ALTER TABLE object_counts DROP CONSTRAINT object_counts_pkey")
    op.execute(
        "ALTER TABLE object_counts ADD CONSTRAINT object_counts_pkey "
        "PRIMARY KEY (table_name, account_id, livemode, slot)"
    )
    for table in OBJECT_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN seq DROP IDENTITY")
        op.execute(f"CREATE SEQUENCE {table}_seq_seq OWNED BY {table}.seq")
        op.execute(
            f"SELECT setval('{table}_seq_seq', coalesce((SELECT max(seq) FROM {table}), 0) + 1, "
            "false)"
        )
        op.execute(f"ALTER TABLE {table} ALTER COLUMN seq SET DEFAULT nextval('{table}_seq_seq')")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (seq)")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_id_key UNIQUE (id)")
