"""Alembic environment: runs the migrations against the URL that ``migrate.py`` passes in."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from overplane.storage.migrate import run_with_connection, server_default_comparison
from overplane.storage.schema import metadata

#: Any constant: serialises concurrent ``overplane migrate`` / ``serve`` starts on PostgreSQL.
MIGRATION_LOCK_ID = 7_415_201_933


def run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_server_default=server_default_comparison(connection.dialect.name),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()


url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
run_with_connection(url, run_migrations)
