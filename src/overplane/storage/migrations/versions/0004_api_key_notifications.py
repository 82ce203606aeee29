"""PostgreSQL: a change to api_keys (a revocation, a deletion) notifies every server process.

Server processes cache key lookups only while they listen on this channel, so a revoked key
stops working everywhere within milliseconds however it was revoked (CLI, SQL, a restore).
SQLite needs nothing: its servers do not cache keys by default.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The channel server processes listen on (a literal: history does not follow live code).
API_KEYS_CHANNEL = "overplane_api_keys"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION overplane_api_keys_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{API_KEYS_CHANNEL}', TG_OP);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys "
        "FOR EACH STATEMENT EXECUTE FUNCTION overplane_api_keys_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS api_keys_changed ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS overplane_api_keys_changed()")
