"""events counted by the relay

An event's write used to count it (a row trigger on ``events`` moving a counter row) and make
its deliveries (an INSERT from the tenant's endpoints) in its own transaction: on PostgreSQL
the two were about 60% of what an event cost the database (docs/performance.md, "Where an
event's cost is"). Now the write adds one narrow row to ``event_outbox``, and the delivery
worker's relay counts and fans out a batch of them in one transaction
(``storage/webhooks.py``). The events total is the counter plus the tenant's outbox rows, so
it stays exact at every moment; existing events are already in the counter.

Written by ``overplane migrations new`` from the declarations (by hand: the PostgreSQL
function the trigger called, no longer used, is dropped, and the SQLite table has no rowid);
every value is a literal, so this file does not change when live code does.

- new table event_outbox
- triggers of events

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


DROP_TRIGGERS: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "events": [
            "DROP TRIGGER IF EXISTS events_written ON events",
            "DROP FUNCTION IF EXISTS overplane_row_counted()",
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
        "event_outbox",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "livemode", "event_id"),
        sqlite_with_rowid=False,
    )
    _run(DROP_TRIGGERS, "events")


def downgrade() -> None:
    raise NotImplementedError(
        "written by overplane migrations new: this change is not reversed automatically"
    )
