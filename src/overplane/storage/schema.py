"""The tables, as SQLAlchemy Core metadata derived from the declarations.

Migrations (``storage/migrations``) are written out by hand so that history never changes when a
declaration does; ``tests/test_migrations.py`` checks that the migrated database matches this
metadata, so the two cannot drift apart silently.
"""

from __future__ import annotations

import sqlalchemy as sa

from overplane.declarations import RESOURCES, Resource

metadata = sa.MetaData()

#: A 64-bit integer on PostgreSQL; on SQLite only INTEGER PRIMARY KEY aliases the rowid.
Sequence64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("livemode", sa.Boolean(), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("revoked_at", sa.BigInteger(), nullable=True),
)


def object_table(resource: Resource) -> sa.Table:
    """The table of one resource: bookkeeping columns, then one column per field.

    ``seq`` is a server-side sequence that breaks ties in the list order; the list index
    ``(account_id, livemode, created_at, seq)`` serves the list order and its count, and every
    query is scoped by account and mode.
    """
    table = sa.Table(
        resource.table_name,
        metadata,
        sa.Column("seq", Sequence64, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        *(sa.Column(f.name, sa.String(f.max_length), nullable=True) for f in resource.fields),
    )
    sa.Index(
        f"ix_{resource.table_name}_list",
        table.c.account_id,
        table.c.livemode,
        table.c.created_at,
        table.c.seq,
    )
    return table


object_tables: dict[str, sa.Table] = {r.name: object_table(r) for r in RESOURCES}
