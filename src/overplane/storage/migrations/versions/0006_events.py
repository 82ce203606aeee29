"""Events: every accepted create, update and delete, recorded with the change.

Written by ``overplane migrations new`` from the declarations; every value is a literal,
so this file does not change when live code does.

- new table events

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


# The counting and tombstone triggers of object tables, as storage/triggers.py wrote them
# when this migration was made, for each dialect.
CREATE_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "events": [
            (
                "\n"
                "CREATE OR REPLACE FUNCTION overplane_row_counted() RETURNS trigger\n"
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
                "    RETURN OLD;\n"
                "END\n"
                "$$\n"
            ),
            (
                "CREATE TRIGGER events_written AFTER INSERT OR DELETE ON events FOR EACH ROW "
                "EXECUTE FUNCTION overplane_row_counted()"
            ),
        ],
    },
    "sqlite": {
        "events": [
            (
                "CREATE TRIGGER events_inserted AFTER INSERT ON events BEGIN INSERT INTO "
                "object_counts (table_name, account_id, livemode, slot, n) VALUES ('events', "
                "NEW.account_id, NEW.livemode, 0, 1) ON CONFLICT (table_name, account_id, "
                "livemode, slot) DO UPDATE SET n = n + 1; END"
            ),
            (
                "CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN INSERT INTO "
                "object_counts (table_name, account_id, livemode, slot, n) VALUES ('events', "
                "OLD.account_id, OLD.livemode, 0, -1) ON CONFLICT (table_name, account_id, "
                "livemode, slot) DO UPDATE SET n = n + -1; END"
            ),
        ],
    },
}
DROP_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "events": [
            "DROP TRIGGER IF EXISTS events_written ON events",
        ],
    },
    "sqlite": {
        "events": [
            "DROP TRIGGER IF EXISTS events_inserted",
            "DROP TRIGGER IF EXISTS events_deleted",
        ],
    },
}


def _run(statements: dict[str, dict[str, list[str]]], table: str) -> None:
    for statement in statements[op.get_bind().dialect.name][table]:
        op.execute(statement)


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
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_index("ix_events_list", "events", ["account_id", "livemode", "created_at", "seq"])
    op.create_index(
        "ix_events_type", "events", ["account_id", "livemode", "type", "created_at", "seq"]
    )
    _run(CREATE_TRIGGERS, "events")


def downgrade() -> None:
    op.drop_table("events")
