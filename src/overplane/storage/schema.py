"""The tables, as SQLAlchemy Core metadata derived from the declarations.

**Ready to shard by account.** Every table that holds an account's data has ``account_id``
leading its primary key and every unique constraint, so a distributed PostgreSQL (Citus,
distribution column ``account_id``, tables co-located) takes the schema unchanged; the tables
that cannot be (:data:`REFERENCE_TABLES`: accounts, and keys, which are found by their hash
before the account is known) are small and replicated whole. docs/deployment.md, "Beyond one
database", has the statements. ``tests/test_sharding.py`` holds the metadata to this rule.

Migrations (``storage/migrations``) are written out, with literal values, by ``overplane
migrations new`` (``storage/migration_writer.py`` compares the migrated schema with this metadata),
so history never changes when a declaration does; ``tests/test_migrations.py`` checks that the
migrated database matches this metadata, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

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

#: Tables without an account_id to shard by: small, read by every request, replicated whole.
REFERENCE_TABLES = frozenset({"accounts", "api_keys"})

#: PostgreSQL: a trigger on api_keys notifies this channel on every update, delete or
#: truncate (migration 0004); server processes listening on it drop their cached key lookups.
API_KEYS_CHANNEL = "overplane_api_keys"


#: Equality filters are served by indexes on this many leading characters of a field:
#: PostgreSQL cannot index whole 1,000-character values (a btree entry holds ~2,700 bytes).
FILTER_INDEX_PREFIX = 100

#: Unfiltered list totals are sums over an account's counter slots, kept exact by triggers in
#: the same transaction as each insert and delete. Several slots per account spread
#: concurrent writers over several rows, so they do not queue on one row lock.
COUNTER_SLOTS = 16

object_counts = sa.Table(
    "object_counts",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("livemode", sa.Boolean(), primary_key=True),
    sa.Column("slot", sa.SmallInteger(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)

#: Where deleted objects stood in their list, so a cursor naming one still has a position.
object_tombstones = sa.Table(
    "object_tombstones",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("livemode", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("deleted_at", sa.BigInteger(), nullable=False, index=True),
)


#: The response of each write sent with an Idempotency-Key, for replay (see http/idempotency.py).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("livemode", sa.Boolean(), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("headers", sa.Text(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False, index=True),
)


def listed_columns(*, account_key: bool = False) -> list[sa.Column[Any]]:
    """The bookkeeping every listed table starts with (``storage/listing.py``): the key
    ``(account_id, id)``, ``seq`` breaking ties in the list order (an identity column on
    PostgreSQL; filled by each INSERT on SQLite), the mode and the creation time.
    ``account_key``: account_id references accounts (object tables)."""
    account = [sa.ForeignKey("accounts.id")] if account_key else []
    return [
        sa.Column("account_id", sa.String(64), *account, primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", Sequence64, sa.Identity(), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    ]


def list_index(table: str) -> sa.Index:
    """The index of a listed table's order, its cursors and created_at ranges."""
    return sa.Index(f"ix_{table}_list", "account_id", "livemode", "created_at", "seq")


#: Every accepted create, update and delete, written in the same transaction as the change (a
#: transactional outbox): the object as stored after it (before it, for a delete) and, for an
#: update, the fields' values before it. Listed like objects (``storage/listing.py``): the
#: list index, an index per filter, and a total that is the counter in ``object_counts`` plus
#: the tenant's rows of ``event_outbox`` (no trigger: migration 0009).
events = sa.Table(
    "events",
    metadata,
    *listed_columns(),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("object_id", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    #: JSON: {"id", "created_at", "updated_at" (epoch ms), then each field}
    sa.Column("object_json", sa.Text(), nullable=False),
    #: JSON: each field's value before an update; NULL for creates and deletes
    sa.Column("previous_json", sa.Text(), nullable=True),
    list_index("events"),
    sa.Index("ix_events_type", "account_id", "livemode", "type", "created_at", "seq"),
    # No index on created_at alone: the sweep walks each tenant's list index instead, and
    # every index is a page more for each write to carry (docs/performance.md, "Events").
)


#: The events not yet relayed: each event's write adds its row here (the same statement), and
#: the delivery worker's relay (``storage/webhooks.py``) takes rows in batches, makes the
#: deliveries they owe and adds them to the events counter, in one transaction. So an event is
#: counted either here or in ``object_counts``, never both, and writes pay for one narrow row
#: instead of a counter row and the fan-out (docs/performance.md, "Where an event's cost is").
event_outbox = sa.Table(
    "event_outbox",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("livemode", sa.Boolean(), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    # SQLite: the rows live in the key's own b-tree, one b-tree to write instead of two.
    sqlite_with_rowid=False,
)


#: Where an account's events are sent (``storage/webhooks.py``). The signing secrets are kept
#: as they are, since they must sign; they are never logged and shown only when made.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    *listed_columns(),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(1000), nullable=True),
    #: JSON: the event types sent, ``*`` matching any run of characters
    sa.Column("enabled_events", sa.Text(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    #: The secret a rotation replaced, still signing beside the new one until it expires.
    sa.Column("previous_secret", sa.String(128), nullable=True),
    sa.Column("previous_secret_expires_at", sa.BigInteger(), nullable=True),
    list_index("webhook_endpoints"),
)

#: One event owed to one endpoint: due (``next_attempt_at``), leased to a worker
#: (``lease_until``), done or given up (``next_attempt_at`` NULL).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("endpoint_id", sa.String(64), primary_key=True),
    sa.Column("livemode", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
    sa.Column("lease_until", sa.BigInteger(), nullable=True),
    sa.Index("ix_webhook_deliveries_due", "next_attempt_at"),
)

#: Every attempt to deliver, for ``GET /api/webhook-endpoints/{id}/attempts``.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    *listed_columns(),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("endpoint_id", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("duration_ms", sa.Integer(), nullable=False),
    sa.Column("next_retry_at", sa.BigInteger(), nullable=True),
    sa.Index(
        "ix_webhook_attempts_list", "account_id", "livemode", "endpoint_id", "created_at", "seq"
    ),
    sa.Index("ix_webhook_attempts_created_at", "created_at"),
)


#: Calendar feeds (``storage/calendar_feeds.py``): a calendar app reaches an account's
#: appointments in one mode by a long random token in the URL, since it cannot send headers.
#: Only the token's SHA-256 is kept. The token index is not unique (a unique key must lead
#: with account_id, see the module docstring): 256 random bits never collide.
calendar_feeds = sa.Table(
    "calendar_feeds",
    metadata,
    *listed_columns(),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("description", sa.String(1000), nullable=True),
    list_index("calendar_feeds"),
    sa.Index("ix_calendar_feeds_token_hash", "token_hash"),
)

#: Dashboard sign-ins (``storage/sessions.py``): the browser holds a random token in an
#: HttpOnly cookie; the server keeps its SHA-256 and the API key it was opened with (by id:
#: the secret itself is never stored), so revoking that key ends the session too.
dashboard_sessions = sa.Table(
    "dashboard_sessions",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("livemode", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.BigInteger(), nullable=False, index=True),
    sa.Index("ix_dashboard_sessions_token_hash", "token_hash"),
)


def time_column(field_name: str) -> str:
    """The column holding a time-range field's RFC 3339 value in epoch microseconds."""
    return f"{field_name}__us"


def object_table(resource: Resource, target: sa.MetaData = metadata) -> sa.Table:
    """The table of one resource: bookkeeping columns, then one column per field.

    The primary key ``(account_id, id)`` serves every by-id statement, and being unique and
    fully matched it is the plan PostgreSQL picks whatever its statistics say (even with none,
    as on a new table, and in a generic plan). ``seq`` breaks ties in the list order: an
    identity column on PostgreSQL; on SQLite, where only a rowid alias counts up by itself,
    each insert takes the last row's seq plus one (:mod:`overplane.storage.objects`). The list
    index ``(account_id, livemode, created_at, seq)`` serves the list order, cursors and
    ``created_at`` ranges; each field declared ``indexed`` has an index that serves its
    equality filter in list order (the other filters read the list index); every query is scoped by account and mode. (``target``: another metadata, for
    tests that compare a changed declaration.)
    """
    table = sa.Table(
        resource.table_name,
        target,
        *listed_columns(account_key=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        *(sa.Column(f.name, sa.String(f.max_length), nullable=True) for f in resource.fields),
        *(
            sa.Column(time_column(f.name), sa.BigInteger(), nullable=True)
            for f in resource.time_range_fields
        ),
    )
    name = resource.table_name
    scope = (table.c.account_id, table.c.livemode)
    sa.Index(f"ix_{name}_list", *scope, table.c.created_at, table.c.seq)
    sa.Index(f"ix_{name}_updated_at", *scope, table.c.updated_at)
    for f in resource.indexed_fields:
        prefix = sa.func.substr(table.c[f.name], 1, FILTER_INDEX_PREFIX)
        sa.Index(f"ix_{name}_{f.name}", *scope, prefix, table.c.created_at, table.c.seq)
    for f in resource.time_range_fields:
        sa.Index(f"ix_{name}_{time_column(f.name)}", *scope, table.c[time_column(f.name)])
    return table


object_tables: dict[str, sa.Table] = {r.name: object_table(r) for r in RESOURCES}


#: Tables whose list totals triggers keep in ``object_counts`` (``storage/triggers.py``), each
#: deleted row leaving a tombstone for cursors. Events are counted without a trigger, by the
#: relay and the sweep (``event_outbox`` above).
COUNTED_TABLES: frozenset[str] = frozenset(
    [*(t.name for t in object_tables.values()), "webhook_endpoints", "calendar_feeds"]
)
