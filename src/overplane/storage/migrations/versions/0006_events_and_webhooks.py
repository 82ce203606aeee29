"""Events and webhooks: every accepted change recorded with it, and delivered to the account's endpoints

Written by ``overplane migrations new`` from the declarations; every value is a literal,
so this file does not change when live code does.

- new table events
- new table webhook_attempts
- new table webhook_deliveries
- new table webhook_endpoints

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
        "webhook_endpoints": [
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
                "CREATE TRIGGER webhook_endpoints_written AFTER INSERT OR DELETE ON "
                "webhook_endpoints FOR EACH ROW EXECUTE FUNCTION overplane_object_written()"
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
        "webhook_endpoints": [
            (
                "CREATE TRIGGER webhook_endpoints_inserted AFTER INSERT ON webhook_endpoints "
                "BEGIN INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
                "VALUES ('webhook_endpoints', NEW.account_id, NEW.livemode, 0, 1) ON "
                "CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + 1; "
                "END"
            ),
            (
                "CREATE TRIGGER webhook_endpoints_deleted AFTER DELETE ON webhook_endpoints "
                "BEGIN INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
                "VALUES ('webhook_endpoints', OLD.account_id, OLD.livemode, 0, -1) ON "
                "CONFLICT (table_name, account_id, livemode, slot) DO UPDATE SET n = n + -1; "
                "INSERT INTO object_tombstones (id, account_id, livemode, created_at, seq, "
                "deleted_at) VALUES (OLD.id, OLD.account_id, OLD.livemode, OLD.created_at, "
                "OLD.seq, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END"
            ),
        ],
    },
}
DROP_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "events": [
            "DROP TRIGGER IF EXISTS events_written ON events",
        ],
        "webhook_endpoints": [
            "DROP TRIGGER IF EXISTS webhook_endpoints_written ON webhook_endpoints",
        ],
    },
    "sqlite": {
        "events": [
            "DROP TRIGGER IF EXISTS events_inserted",
            "DROP TRIGGER IF EXISTS events_deleted",
        ],
        "webhook_endpoints": [
            "DROP TRIGGER IF EXISTS webhook_endpoints_inserted",
            "DROP TRIGGER IF EXISTS webhook_endpoints_deleted",
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
    op.create_index("ix_events_list", "events", ["account_id", "livemode", "created_at", "seq"])
    op.create_index(
        "ix_events_type", "events", ["account_id", "livemode", "type", "created_at", "seq"]
    )
    _run(CREATE_TRIGGERS, "events")
    op.create_table(
        "webhook_attempts",
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
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_index("ix_webhook_attempts_created_at", "webhook_attempts", ["created_at"])
    op.create_index(
        "ix_webhook_attempts_list",
        "webhook_attempts",
        ["account_id", "livemode", "endpoint_id", "created_at", "seq"],
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "event_id", "endpoint_id"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"])
    op.create_table(
        "webhook_endpoints",
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
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("enabled_events", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_expires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_index(
        "ix_webhook_endpoints_list",
        "webhook_endpoints",
        ["account_id", "livemode", "created_at", "seq"],
    )
    _run(CREATE_TRIGGERS, "webhook_endpoints")


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_attempts")
    op.drop_table("events")
