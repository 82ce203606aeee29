"""Events: every accepted create, update and delete, recorded with the change.

The ``events`` table, its list, type and retention indexes, and triggers that keep its list
totals in ``object_counts`` (as the object tables' triggers do, without tombstones: events are
never deleted one by one, only swept when they expire). Every value is spelled out: this file
imports nothing of the project.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: PostgreSQL: a random one of 16 counter slots per row, as for objects (concurrent writers of
#: one account do not queue on one counter row).
POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION overplane_row_counted() RETURNS trigger
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
    RETURN OLD;
END
$$
"""
SQLITE_TRIGGERS = [
    "CREATE TRIGGER events_inserted AFTER INSERT ON events BEGIN "
    "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
    "VALUES ('events', NEW.account_id, NEW.livemode, 0, 1) "
    "ON CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN "
    "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
    "VALUES ('events', OLD.account_id, OLD.livemode, 0, -1) "
    "ON CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + -1; END",
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("object_json", sa.Text(), nullable=False),
        sa.Column("previous_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_index("ix_events_list", "events", ["account_id", "livemode", "created_at", "seq"])
    op.create_index(
        "ix_events_type", "events", ["account_id", "livemode", "type", "created_at", "seq"]
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_written AFTER INSERT OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION overplane_row_counted()"
        )
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("events")  # its indexes and triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS overplane_row_counted()")
    op.execute("DELETE FROM object_counts WHERE table_name = 'events'")
