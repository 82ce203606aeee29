"""Events: the record of every accepted create, update and delete (a transactional outbox).

An event row is written by the statement that makes the change (``objects.py``: data-modifying
CTEs on PostgreSQL, the serving connection's temporary triggers on SQLite), so there is no
accepted change without its event and no event without its change. It keeps the object as
stored after the change (before it, for a delete) as JSON of stored values, times in epoch
milliseconds; the HTTP layer renders it as the API returns objects, so an event shows exactly
what a retrieve showed at that moment.

The same statement adds the event's row to ``event_outbox``; the delivery worker's relay
(``webhooks.py``) takes it from there, making the deliveries and counting the event. So the
events total is the counter plus the tenant's outbox rows, and the sweep (below) keeps both
sides exact.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from overplane.storage.database import Executor, Row
from overplane.storage.ids import could_be_object_id, new_object_id
from overplane.storage.listing import Listing, ListQuery, Page, insert_statements
from overplane.storage.tenant import Tenant

ID_PREFIX = "evt_"
#: Events swept per transaction: one huge DELETE would hold its locks and grow one
#: transaction for long; batches keep writers flowing.
SWEEP_BATCH = 1000

_encode = msgspec.json.Encoder().encode

#: The columns an event row is written with, in the order of :func:`insert_sql`'s placeholders.
INSERT_COLUMNS = (
    "id",
    "account_id",
    "livemode",
    "created_at",
    "type",
    "object_id",
    "request_id",
    "idempotency_key",
    "object_json",
    "previous_json",
)


class EventOrigin(NamedTuple):
    """What caused a change: the request's id and the Idempotency-Key it was sent with."""

    request_id: str
    idempotency_key: str | None


class StoredEvent(NamedTuple):
    """One event as stored."""

    id: str
    type: str
    created_at: int
    object_id: str
    request_id: str
    idempotency_key: str | None
    #: The object's stored values as JSON: {"id", "created_at", "updated_at", fields...}
    object_json: str
    #: The fields' values before an update, as JSON; None for a create or a delete.
    previous_json: str | None

    @classmethod
    def read(cls, row: Row, start: int = 0) -> StoredEvent:
        """The event in ``row``'s columns from ``start`` on, in :data:`COLUMNS` order."""
        return cls(*row[start : start + 8])


#: The columns an event is read from, in :class:`StoredEvent`'s order.
COLUMNS = StoredEvent._fields


_INSERT = insert_statements("events", INSERT_COLUMNS)


def insert_sql(dialect: str) -> str:
    """The INSERT of one event (``?`` for each of :data:`INSERT_COLUMNS`)."""
    return _INSERT[dialect]


def outbox_sql(values: str) -> str:
    """The INSERT of an event's row of ``event_outbox`` (not relayed yet); ``values`` gives
    its account_id, livemode and event id (a VALUES list, or a SELECT)."""
    return f"INSERT INTO event_outbox (account_id, livemode, event_id) {values}"


def counter_sql(rows: str) -> str:
    """The upsert that moves the events counters by ``rows`` (a VALUES list or a SELECT of
    'events', account_id, livemode, slot, delta): the relay's and the sweep's one statement."""
    return (
        f"INSERT INTO object_counts (table_name, account_id, livemode, slot, n) {rows} "
        "ON CONFLICT (table_name, account_id, livemode, slot) "
        "DO UPDATE SET n = object_counts.n + excluded.n"
    )


def values_json(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """Stored values as the JSON object an event keeps (keys in column order)."""
    return _encode(dict(zip(names, values, strict=True))).decode()


def insert_args(
    tenant: Tenant,
    created_at: int,
    event_type: str,
    object_id: str,
    origin: EventOrigin,
    object_json: str,
    previous_json: str | None,
) -> tuple[Any, ...]:
    """The arguments of :func:`insert_sql` for a new event (its id is made here)."""
    return (
        new_object_id(ID_PREFIX),
        *tenant.args,
        created_at,
        event_type,
        object_id,
        origin.request_id,
        origin.idempotency_key,
        object_json,
        previous_json,
    )


class EventStore:
    """Reading an account's events; writing them is part of each change (``objects.py``)."""

    def __init__(self) -> None:
        self.listing = Listing(
            "events", COLUMNS, id_prefix=ID_PREFIX, tombstones=False, uncounted="event_outbox"
        )
        self._select = (
            f"SELECT {', '.join(COLUMNS)} FROM events WHERE id = ? AND account_id = ? "
            "AND livemode = ?"
        )

    async def retrieve(self, db: Executor, tenant: Tenant, event_id: str) -> StoredEvent | None:
        """The event, or None if this tenant has none with that id (or it was swept)."""
        if not could_be_object_id(ID_PREFIX, event_id):
            return None
        row = await db.fetch_one(self._select, (event_id, *tenant.args))
        return None if row is None else StoredEvent.read(row)

    async def list(self, db: Executor, tenant: Tenant, query: ListQuery) -> Page[StoredEvent]:
        """A page of the tenant's events that meet the query's conditions, newest first."""
        return await self.listing.list(db, tenant, query, StoredEvent.read)


async def sweep(db: Executor, before_ms: int) -> int:
    """Delete the events created before ``before_ms``, tenant by tenant along each one's list
    index, in batches; how many went.

    Each batch is one transaction that keeps the total exact without a trigger: an event is
    counted in ``object_counts`` once the relay has taken its outbox row, and in the outbox
    until then. So the batch deletes the outbox rows of its events (those the relay has not
    taken) and the events, and moves the counter by the difference. Concurrent sweeps and
    relays stay exact too: each statement counts only the rows it deleted itself, and
    deleting an outbox row is what counting an event means.
    """
    tenants = await db.fetch_all(
        "SELECT DISTINCT account_id, livemode FROM object_counts WHERE table_name = 'events' "
        "UNION SELECT DISTINCT account_id, livemode FROM event_outbox"
    )
    batch = (
        "SELECT id FROM events WHERE account_id = ? AND livemode = ? AND created_at <= ? "
        f"ORDER BY created_at, id LIMIT {SWEEP_BATCH}"
    )
    swept = 0
    for account_id, livemode in tenants:
        tenant = (account_id, livemode)
        while True:
            async with db.atomic() as transaction:
                unrelayed = await transaction.fetch_all(
                    "DELETE FROM event_outbox WHERE account_id = ? AND livemode = ? AND "
                    f"event_id IN ({batch}) RETURNING event_id",
                    (*tenant, *tenant, before_ms),
                )
                gone = await transaction.fetch_all(
                    "DELETE FROM events WHERE account_id = ? AND livemode = ? AND "
                    f"id IN ({batch}) RETURNING id",
                    (*tenant, *tenant, before_ms),
                )
                if len(unrelayed) != len(gone):
                    await transaction.execute(
                        counter_sql("VALUES ('events', ?, ?, 0, ?)"),
                        (*tenant, len(unrelayed) - len(gone)),
                    )
            swept += len(gone)
            if len(gone) < SWEEP_BATCH:
                break
    return swept
