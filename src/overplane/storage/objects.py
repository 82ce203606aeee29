"""Reading and writing the objects of one resource, scoped by tenant (account and mode).

The SQL is derived from the resource's declaration. Objects come back as
:class:`StoredObject` rows, timestamps in epoch milliseconds.

Lists are served by indexes: the list index for the unfiltered order, cursors and
``created_at`` ranges (and equality filters on fields without an index of their own), one
index per field declared ``indexed``, and one per range column.
An unfiltered total is a sum over the account's counter rows (kept exact by triggers, see
``triggers.py``) rather than a count of its rows, so it costs the same at a million objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from overplane.clock import now_ms
from overplane.declarations import Resource
from overplane.rfc3339 import parse_ns
from overplane.storage import events
from overplane.storage.database import Executor, Recording, Row
from overplane.storage.events import EventOrigin
from overplane.storage.ids import could_be_object_id, new_object_id
from overplane.storage.listing import Listing, ListQuery, Page, insert_statements
from overplane.storage.schema import time_column
from overplane.storage.tenant import Tenant

_new_tuple = tuple.__new__


class StoredObject(NamedTuple):
    """One object as stored: its id, its times in epoch milliseconds, its field values."""

    id: str
    created_at: int
    updated_at: int
    #: One value per declared field, in declaration order (None where unset).
    values: tuple[str | None, ...]

    @classmethod
    def read(cls, row: Row, start: int = 0) -> StoredObject:
        """The object in ``row``'s columns from ``start`` on: id, created_at, updated_at, fields.

        The one place that knows the column order of :attr:`ObjectStore.columns`. Built with
        ``tuple.__new__``, skipping the generated ``__new__``'s argument handling: 0.23 µs a
        row instead of 0.33 (a 20-object page reads 20); both drivers slice rows to tuples.
        """
        values = (row[start], row[start + 1], row[start + 2], row[start + 3 :])
        return _new_tuple(cls, values)


def time_us(value: str | None) -> int | None:
    """The normalised copy of a time-range field's value: epoch microseconds, or None."""
    ns = parse_ns(value) if value is not None else None
    return None if ns is None else ns // 1000


class ObjectStore:
    """The SQL of one resource's table and the calls that run it."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        table = resource.table_name
        self._table = table
        self._field_names = tuple(f.name for f in resource.fields)
        self._time_fields = tuple(f.name for f in resource.time_range_fields)
        #: The columns an object is read from, in the order :meth:`StoredObject.read` expects.
        self.columns = ("id", "created_at", "updated_at", *self._field_names)
        self._columns = ", ".join(self.columns)
        scoped = "account_id = ? AND livemode = ?"
        inserted = ("id", "account_id", "livemode", "created_at", "updated_at", *self._field_names)
        #: The columns a new row fills, in the order of :attr:`insert_sql`'s placeholders.
        self.insert_columns = inserted + tuple(time_column(name) for name in self._time_fields)
        #: The INSERT of one row, by dialect (``listing.insert_statements``).
        self.insert_sql = insert_statements(table, self.insert_columns)
        # Every by-id statement names the whole primary key (account_id, id) by equality, so
        # the unique index is the only sensible plan, with statistics or without.
        by_id = f"id = ? AND {scoped}"
        self._by_id = by_id
        self._select = f"SELECT {self._columns} FROM {table} WHERE {by_id}"
        self._delete = f"DELETE FROM {table} WHERE {by_id}"
        self.listing = Listing(table, self.columns, id_prefix=resource.id_prefix, tombstones=True)
        self._update_sql = lru_cache(maxsize=1024)(self._build_update)
        self._created, self._updated, self._deleted = resource.event_types
        self._with_event = _PostgresEventStatements(
            table, self.columns, self._field_names, self.insert_sql["postgresql"]
        )
        self._update_with_event = lru_cache(maxsize=1024)(self._with_event.update)
        self._triggers = _SQLiteEventTriggers(
            table, self.columns, self._field_names, resource.event_types
        )

    def by_id_statements(self) -> dict[str, str]:
        """Every statement that finds an object by id (with an If-Match of one version where
        that applies), for checking their plans."""
        return {
            "retrieve": self._select,
            "update": self._update_sql(self._field_names[:1], 0),
            "update_if_match": self._update_sql(self._field_names[:1], 1),
            "delete": self._delete_sql(0),
            "delete_if_match": self._delete_sql(1),
            "position": self.listing.position_sql,
        }

    def _delete_sql(self, versions: int) -> str:
        return f"{self._delete}{_versions_sql(versions)} RETURNING id"

    def _build_update(self, names: tuple[str, ...], versions: int) -> str:
        # updated_at moves strictly forward, even for two updates in one millisecond.
        assignments = "".join(f"{name} = ?, " for name in names)
        return (
            f"UPDATE {self._table} SET {assignments}"
            "updated_at = CASE WHEN ? > updated_at THEN ? ELSE updated_at + 1 END "
            f"WHERE {self._by_id}{_versions_sql(versions)} "
            f"RETURNING {self._columns}"
        )

    def _object_json(self, stored: StoredObject) -> str:
        return events.values_json(
            self.columns, (stored.id, stored.created_at, stored.updated_at, *stored.values)
        )

    async def create(
        self,
        db: Executor,
        tenant: Tenant,
        values: Mapping[str, str | None],
        origin: EventOrigin | None = None,
    ) -> StoredObject:
        """Insert a new object with ``values`` (validated field values) and return it; with
        ``origin``, record its ``…created`` event in the same transaction."""
        object_id = new_object_id(self.resource.id_prefix)
        stamp = now_ms()
        field_values = tuple(values.get(name) for name in self._field_names)
        times = tuple(time_us(values.get(name)) for name in self._time_fields)
        row_args = (object_id, *tenant.args, stamp, stamp, *field_values, *times)
        stored = StoredObject(object_id, stamp, stamp, field_values)
        if origin is None:
            await db.execute(self.insert_sql[db.dialect], row_args)
        elif db.dialect == "sqlite":
            recording = self._triggers.created.recording(stamp, origin)
            await db.fetch_recorded(self.insert_sql["sqlite"], row_args, recording)
        else:
            event = events.insert_args(
                tenant, stamp, self._created, object_id, origin, self._object_json(stored), None
            )
            # One statement, one round trip: the row and its event are written together.
            await db.execute(self._with_event.create, (*row_args, *event))
        return stored

    async def retrieve(self, db: Executor, tenant: Tenant, object_id: str) -> StoredObject | None:
        """The object, or None if this tenant has no object with that id."""
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return None
        row = await db.fetch_one(self._select, (object_id, *tenant.args))
        return None if row is None else StoredObject.read(row)

    async def update(
        self,
        db: Executor,
        tenant: Tenant,
        object_id: str,
        values: Mapping[str, str | None],
        versions: tuple[int, ...] | None = None,
        origin: EventOrigin | None = None,
    ) -> StoredObject | None:
        """Set ``values`` on the object and return it as it now is; with ``origin``, record
        its ``…updated`` event (with the fields' values before) in the same transaction.

        None if the object does not exist, or (with ``versions``, from If-Match) if its
        current version is not one of them: the caller tells the two apart.
        """
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return None
        names = tuple(name for name in self._field_names if name in values)
        args: list[Any] = [values[name] for name in names]
        time_names = tuple(name for name in self._time_fields if name in values)
        args += [time_us(values[name]) for name in time_names]
        stamp = now_ms()
        columns = names + tuple(time_column(name) for name in time_names)
        by_id = (object_id, *tenant.args)
        if origin is None or db.dialect == "sqlite":
            sql = self._update_sql(columns, len(versions or ()))
            args += [stamp, stamp, *by_id, *(versions or ())]
            if origin is None:
                row = await db.fetch_one(sql, args)
            else:
                recording = self._triggers.updated.recording(stamp, origin)
                row = await db.fetch_recorded(sql, args, recording)
            return None if row is None else StoredObject.read(row)
        event = events.insert_args(tenant, stamp, self._updated, object_id, origin, "", None)
        # The old values come from a locked read inside the UPDATE itself (FROM … FOR
        # UPDATE), so they are those this update replaced, even under concurrent writers.
        sql = self._update_with_event(columns, len(versions or ()))
        row = await db.fetch_one(
            sql,
            [
                *args,
                *(stamp, stamp, *by_id, *(versions or ())),
                *_without_payload(event),
            ],
        )
        return None if row is None else StoredObject.read(row)

    async def delete(
        self,
        db: Executor,
        tenant: Tenant,
        object_id: str,
        versions: tuple[int, ...] | None = None,
        origin: EventOrigin | None = None,
    ) -> bool:
        """Delete the object; False if it does not exist or (with ``versions``) has moved on.
        With ``origin``, record its ``…deleted`` event (the last state) in the same
        transaction."""
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return False
        by_id = (object_id, *tenant.args, *(versions or ()))
        if origin is None:
            return await db.fetch_one(self._delete_sql(len(versions or ())), by_id) is not None
        if db.dialect == "sqlite":
            recording = self._triggers.deleted.recording(now_ms(), origin)
            sql = self._delete_sql(len(versions or ()))
            return await db.fetch_recorded(sql, by_id, recording) is not None
        event = events.insert_args(tenant, now_ms(), self._deleted, object_id, origin, "", None)
        sql = self._with_event.delete(len(versions or ()))
        args = (*by_id, *_without_payload(event))
        return await db.fetch_one(sql, args) is not None

    async def list(self, db: Executor, tenant: Tenant, query: ListQuery) -> Page[StoredObject]:
        """A page of the tenant's objects that meet the query's conditions, newest first."""
        return await self.listing.list(db, tenant, query, StoredObject.read)


def _versions_sql(count: int) -> str:
    """The If-Match condition: the object's version (its updated_at) is one of ``count``."""
    if not count:
        return ""
    return f" AND updated_at IN ({', '.join('?' * count)})"


async def sweep_tombstones(db: Executor, before_ms: int) -> None:
    """Forget where objects deleted before ``before_ms`` stood (cursors naming them fail)."""
    await db.execute("DELETE FROM object_tombstones WHERE deleted_at <= ?", (before_ms,))


def _without_payload(event: tuple[Any, ...]) -> tuple[Any, ...]:
    """An event's insert arguments less those the PostgreSQL statements take from the row
    they change: object_id, object_json and previous_json."""
    return (*event[:5], *event[6:8])


class _SQLiteEventTrigger(NamedTuple):
    """SQLite: the temporary trigger that records one kind of change's event (and its row
    of the outbox, for the relay) in the statement that makes the change
    (``SQLiteDatabase``, "Events"), taking the request's part from ``overplane_event(i)``."""

    trigger: str

    def recording(self, created_at: int, origin: EventOrigin) -> Recording:
        """The values a write's trigger records: a new event id, its time, the request (in
        the order of the trigger's ``overplane_event(0)`` to ``(3)``)."""
        event_id = new_object_id(events.ID_PREFIX)
        return Recording(
            self.trigger, (event_id, created_at, origin.request_id, origin.idempotency_key)
        )


class _SQLiteEventTriggers:
    """SQLite: the triggers of a table's created, updated and deleted events."""

    def __init__(
        self,
        table: str,
        columns: tuple[str, ...],
        fields: tuple[str, ...],
        event_types: tuple[str, str, str],
    ) -> None:
        created, updated, deleted = event_types
        # An update's event keeps the fields' values it replaced; a delete's, the last state.
        previous = _sqlite_json("OLD", fields)
        self.created = self._trigger(table, "INSERT", created, "NEW", columns, "NULL")
        self.updated = self._trigger(table, "UPDATE", updated, "NEW", columns, previous)
        self.deleted = self._trigger(table, "DELETE", deleted, "OLD", columns, "NULL")

    @staticmethod
    def _trigger(
        table: str,
        operation: str,
        event_type: str,
        row: str,
        columns: tuple[str, ...],
        previous_json: str,
    ) -> _SQLiteEventTrigger:
        event_type_sql = "'" + event_type.replace("'", "''") + "'"
        values = {
            "id": "overplane_event(0)",
            "account_id": f"{row}.account_id",
            "livemode": f"{row}.livemode",
            "created_at": "overplane_event(1)",
            "type": event_type_sql,
            "object_id": f"{row}.id",
            "request_id": "overplane_event(2)",
            "idempotency_key": "overplane_event(3)",
            "object_json": _sqlite_json(row, columns),
            "previous_json": previous_json,
        }
        insert = insert_statements(
            "events", events.INSERT_COLUMNS, [values[c] for c in events.INSERT_COLUMNS]
        )["sqlite"]
        pending = events.outbox_sql(
            f"VALUES ({row}.account_id, {row}.livemode, overplane_event(0))"
        )
        name = f"overplane_{table}_{operation.lower()}_event"
        trigger = (
            f"CREATE TEMP TRIGGER IF NOT EXISTS {name} AFTER {operation} ON main.{table} "
            f"WHEN overplane_event(0) IS NOT NULL BEGIN {insert}; {pending}; END"
        )
        return _SQLiteEventTrigger(trigger)


def _sqlite_json(alias: str, names: tuple[str, ...]) -> str:
    """A JSON text of ``alias``'s columns ``names`` (an SQL function takes at most 127
    arguments, so wide rows are built 50 columns at a time; ``json_insert``, unlike
    ``json_patch``, keeps null values)."""
    chunks = [names[i : i + 50] for i in range(0, len(names), 50)] or [()]
    built = "json_object(" + ", ".join(f"'{n}', {alias}.{n}" for n in chunks[0]) + ")"
    for chunk in chunks[1:]:
        built = f"json_insert({built}, " + ", ".join(f"'$.{n}', {alias}.{n}" for n in chunk) + ")"
    return built


class _PostgresEventStatements:
    """PostgreSQL statements that change one object and record its event in the same
    statement (data-modifying CTEs): one round trip, atomic by itself."""

    def __init__(
        self, table: str, columns: tuple[str, ...], fields: tuple[str, ...], insert_sql: str
    ) -> None:
        self._table = table
        self._columns = columns
        self._fields = fields
        event_columns = ", ".join(events.INSERT_COLUMNS)
        # The event's own values, then what comes from the changed row: its id and JSON.
        self._insert_event = (
            f"INSERT INTO events ({event_columns}) "
            "SELECT ?, ?, ?, ?, ?, changed.id, ?, ?, changed.object_json"
        )
        # The event's row of the outbox (for the relay), made only if the event is: the
        # update or delete may match nothing.
        pending = events.outbox_sql("SELECT account_id, livemode, id FROM event")
        self._pending = f"pending AS ({pending})"
        #: INSERT of the row, of its event (all of whose values are known beforehand), and
        #: of its row of the outbox.
        self.create = (
            f"WITH created AS ({insert_sql}), event AS ({events.insert_sql('postgresql')} "
            f"RETURNING account_id, livemode, id) {pending}"
        )

    def json_of(self, alias: str, names: tuple[str, ...]) -> str:
        """A JSON text of ``alias``'s columns ``names`` (jsonb_build_object takes at most 100
        arguments, so wide rows are built in chunks and merged)."""
        chunks = [names[i : i + 50] for i in range(0, len(names), 50)] or [()]
        built = " || ".join(
            "jsonb_build_object(" + ", ".join(f"'{n}', {alias}.{n}" for n in chunk) + ")"
            for chunk in chunks
        )
        return f"({built})::text"

    def update(self, names: tuple[str, ...], versions: int) -> str:
        """UPDATE with the old values of the fields it sets (``names``) read under a row
        lock, then the event insert."""
        table = self._table
        assignments = "".join(f"{name} = ?, " for name in names)
        # Only the fields this update sets can be in previous_attributes (the renderer keeps
        # those whose value changed), so only theirs are kept.
        patched = tuple(name for name in names if name in self._fields)
        fields = "".join(f", {name}" for name in patched)
        returned = ", ".join(f"t.{c}" for c in self._columns)
        return (
            f"WITH changed AS (UPDATE {table} AS t SET {assignments}"
            "updated_at = CASE WHEN ? > t.updated_at THEN ? ELSE t.updated_at + 1 END "
            f"FROM (SELECT account_id, id{fields} FROM {table} "
            "WHERE id = ? AND account_id = ? AND livemode = ? FOR UPDATE) AS old "
            "WHERE t.account_id = old.account_id AND t.id = old.id"
            f"{_versions_sql(versions).replace('updated_at', 't.updated_at')} "
            f"RETURNING {returned}, {self.json_of('t', self._columns)} AS object_json, "
            f"{self.json_of('old', patched)} AS previous_json), "
            f"event AS ({self._insert_event}, changed.previous_json FROM changed "
            f"RETURNING account_id, livemode, id), "
            f"{self._pending} SELECT {', '.join(self._columns)} FROM changed"
        )

    def delete(self, versions: int) -> str:
        """DELETE returning the last state, then the event insert; returns the event's row."""
        table = self._table
        return (
            f"WITH changed AS (DELETE FROM {table} "
            f"WHERE id = ? AND account_id = ? AND livemode = ?{_versions_sql(versions)} "
            f"RETURNING id, {self.json_of(table, self._columns)} AS object_json), "
            f"event AS ({self._insert_event}, NULL FROM changed "
            f"RETURNING account_id, livemode, id, object_id), "
            f"{self._pending} SELECT object_id FROM event"
        )
