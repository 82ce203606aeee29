"""Filters, cursors and cheap exact totals for lists.

Adds: an index per filterable field (on its first 100 characters) and on updated_at; the
normalised copy of appointment.scheduled_time (epoch microseconds) with its index; the
object_counts table and its triggers, backfilled from the existing rows; and object_tombstones,
where deleted objects leave their list position for cursors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from overplane.rfc3339 import parse_ns
from overplane.storage.triggers import create_object_triggers, drop_object_triggers

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
