"""calendar feeds and dashboard sessions

Written by ``overplane migrations new`` from the declarations; every value is a literal,
so this file does not change when live code does.

- new table calendar_feeds
- new table dashboard_sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The counting and tombstone triggers of object tables, as storage/triggers.py wrote them
# when this migration was made, for each dialect.
CREATE_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "calendar_feeds": [
            (
                "\n"
                "CREATE OR REPLACE FUNCTION overplane_object_written() RETURNS trigger\n"
                "LANGUAGE plpgsql AS $$\n"
                "BEGIN\n"
                "    IF TG_OP = 'INSERT' THEN\n"
                "        INSERT INTO object_counts (table_name, account_id, livemode, slot, n)\n"
                "        VALUES (TG_TABLE_NAME, NEW.account_id, NEW.livemode, floor(random() * 16)::int, 1)\n"
                "        ON CONFLICT (table_name, account_id, livemode, slot)\n"
                "        DO UPDATE SET n = object_counts.n + 1;\n"
                "        RETURN NEW;\n"
                "    END IF;\n"
                "    INSERT INTO object_counts (table_name, account_id, livemode, slot, n)\n"
                "    VALUES (TG_TABLE_NAME, OLD.account_id, OLD.livemode, floor(random() * 16)::int, -1)\n"
                "    ON CONFLICT (table_name, account_id, livemode, slot)\n"
                "    DO UPDATE SET n = object_counts.n - 1;\n"
                "    INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, deleted_at)\n"
                "    VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, OLD.seq,\n"
                "            (extract(epoch FROM clock_timestamp()) * 1000)::bigint);\n"
                "    RETURN OLD;\n"
                "END\n"
                "$$\n"
            ),
            (
                "CREATE TRIGGER calendar_feeds_written AFTER INSERT OR DELETE ON "
                "calendar_feeds FOR EACH ROW EXECUTE FUNCTION overplane_object_written()"
            ),
        ],
    },
    "sqlite": {
        "calendar_feeds": [
            (
                "CREATE TRIGGER calendar_feeds_inserted AFTER INSERT ON calendar_feeds BEGIN "
                "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
                "VALUES ('calendar_feeds', NEW.account_id, NEW.livemode, 0, 1) ON CONFLICT "
                "(table_name, account_id, livemode, slot) DO UPDATE SET n = n + 1; END"
            ),
            (
                "CREATE TRIGGER calendar_feeds_deleted AFTER DELETE ON calendar_feeds BEGIN "
                "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
                "VALUES ('calendar_feeds', OLD.account_id, OLD.livemode, 0, -1) ON CONFLICT "
                "(table_name, account_id, livemode, slot) DO UPDATE SET n = n + -1; INSERT "
                "INTO object_tombstones (id, account_id, livemode, created_at, seq, "
                "deleted_at) VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, "
                "OLD.seq, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END"
            ),
        ],
    },
}
DROP_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "calendar_feeds": [
            "DROP TRIGGER IF EXISTS calendar_feeds_written ON calendar_feeds",
        ],
    },
    "sqlite": {
        "calendar_feeds": [
            "DROP TRIGGER IF EXISTS calendar_feeds_inserted",
            "DROP TRIGGER IF EXISTS calendar_feeds_deleted",
        ],
    },
}


def _run(statements: dict[str, dict[str, list[str]]], table: str) -> None:
    for statement in statements[op.get_bind().dialect.name][table]:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
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
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_index(
        "ix_calendar_feeds_list", "calendar_feeds", ["account_id", "livemode", "created_at", "seq"]
    )
    op.create_index("ix_calendar_feeds_token_hash", "calendar_feeds", ["token_hash"])
    _run(CREATE_TRIGGERS, "calendar_feeds")
    op.create_table(
        "dashboard_sessions",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "token_hash"),
    )
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])
    op.create_index("ix_dashboard_sessions_token_hash", "dashboard_sessions", ["token_hash"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    op.drop_table("calendar_feeds")
