"""Filters, cursors and cheap exact totals for lists.

Adds: an index per filterable field (on its first 100 characters) and on updated_at; the
normalised copy of appointment.scheduled_time (epoch microseconds) with its index; the
object_counts table and its triggers, backfilled from the existing rows; and object_tombstones,
where deleted objects leave their list position for cursors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = 100
FILTERABLE = {
    "accounts_party_link": ["primary_role", "secondary_role", "primary_party", "secondary_party"],
    "crm_appointment": [
        "customer_name",
        "customer_phone_number",
        "customer_skype",
        "customer_details",
        "scheduled_time",
        "status",
        "calendar_event",
        "customer_email",
        "appointment_with",
        "party",
    ],
}

# Frozen copies of what this migration used from live code when it was written (RFC 3339
# parsing, the trigger DDL), so that history does not change when live code does.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ns(value: str) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 date-time, or None (as rfc3339.parse_ns)."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        if zulu:
            zone = UTC
        else:
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None
    whole = moment - _EPOCH
    seconds = whole.days * 86_400 + whole.seconds
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION overplane_object_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO object_counts (table_name, account_id, livemode, slot, n)
        VALUES (TG_TABLE_NAME, NEW.account_id, NEW.livemode, floor(random() * 16)::int, 1)
        ON CONFLICT (table_name, account_id, livemode, slot)
        DO UPDATE SET n = object_counts.n + 1;
        RETURN NEW;
    END IF;
    INSERT INTO object_counts (table_name, account_id, livemode, slot, n)
    VALUES (TG_TABLE_NAME, OLD.account_id, OLD.livemode, floor(random() * 16)::int, -1)
    ON CONFLICT (table_name, account_id, livemode, slot)
    DO UPDATE SET n = object_counts.n - 1;
    INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)
    VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq,
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    RETURN OLD;
END
$$
"""

SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _create_trigger_statements(table: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            POSTGRES_FUNCTION,
            f"CREATE TRIGGER {table}_written AFTER INSERT OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION overplane_object_written()",
        ]
    upsert = (
        "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
        "VALUES ('{table}', {row}.account_id, {row}.livemode, 0, {delta}) "
        "ON CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + {delta};"
    )
    return [
        f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} BEGIN "
        + upsert.format(table=table, row="NEW", delta=1)
        + " END",
        f"CREATE TRIGGER {table}_deleted AFTER DELETE ON {table} BEGIN "
        + upsert.format(table=table, row="OLD", delta=-1)
        + " INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)"
        f" VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq, {SQLITE_NOW_MS});"
        " END",
    ]


def create_object_triggers(table: str) -> None:
    for statement in _create_trigger_statements(table, op.get_bind().dialect.name):
        op.execute(statement)


def drop_object_triggers(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_written ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_inserted")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_deleted")


def _backfill_scheduled_time() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT seq, scheduled_time FROM crm_appointment")).fetchall()
    for seq, value in rows:
        ns = parse_ns(value) if value is not None else None
        if ns is not None:
            bind.execute(
                sa.text("UPDATE crm_appointment SET scheduled_time__us = :us WHERE seq = :seq"),
                {"us": ns // 1000, "seq": seq},
            )


def upgrade() -> None:
    op.create_table(
        "object_counts",
        sa.Column("table_name", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("livemode", sa.Boolean(), primary_key=True),
        sa.Column("slot", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "object_tombstones",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_object_tombstones_deleted_at", "object_tombstones", ["deleted_at"])
    with op.batch_alter_table("crm_appointment") as batch:
        batch.add_column(sa.Column("scheduled_time__us", sa.BigInteger(), nullable=True))
    _backfill_scheduled_time()
    op.create_index(
        "ix_crm_appointment_scheduled_time__us",
        "crm_appointment",
        ["account_id", "livemode", "scheduled_time__us"],
    )
    for table, fields in FILTERABLE.items():
        op.create_index(f"ix_{table}_updated_at", table, ["account_id", "livemode", "updated_at"])
        for field in fields:
            op.create_index(
                f"ix_{table}_{field}",
                table,
                [
                    "account_id",
                    "livemode",
                    sa.text(f"substr({field}, 1, {PREFIX})"),
                    "created_at",
                    "seq",
                ],
            )
        op.execute(
            "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
            f"SELECT '{table}', account_id, livemode, 0, count(*) FROM {table} "
            "GROUP BY account_id, livemode"
        )
        create_object_triggers(table)


def downgrade() -> None:
    for table, fields in FILTERABLE.items():
        drop_object_triggers(table)
        for field in fields:
            op.drop_index(f"ix_{table}_{field}", table_name=table)
        op.drop_index(f"ix_{table}_updated_at", table_name=table)
    op.drop_index("ix_crm_appointment_scheduled_time__us", table_name="crm_appointment")
    with op.batch_alter_table("crm_appointment") as batch:
        batch.drop_column("scheduled_time__us")
    op.drop_table("object_tombstones")
    op.drop_table("object_counts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS overplane_object_written()")
