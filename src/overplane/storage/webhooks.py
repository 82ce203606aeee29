"""Webhook endpoints, their deliveries and the log of every attempt.

A delivery is one event owed to one endpoint. Each event's write leaves a row in
``event_outbox`` (``objects.py``); the relay (:meth:`DeliveryStore.relay`, run by every
delivery worker before it claims) takes a batch of those rows and, in one transaction, makes
the deliveries they owe (every enabled endpoint of the tenant whose ``enabled_events`` match
the event's type gets one, due at once) and adds them to the events counter. A crash undoes
the whole batch, which stays in the outbox for the next relay: no event is skipped, and the
deliveries' primary key keeps a second relay of the same event from owing it twice.
The delivery worker (``webhooks/worker.py``) claims due deliveries under a lease, sends them,
and records each attempt; a delivery is done only after a 2xx, so a worker that dies
mid-delivery leaves a lease that expires and the delivery is sent again (at least once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from overplane.storage.database import Database, Executor, Row
from overplane.storage.events import counter_sql
from overplane.storage.ids import could_be_object_id, new_object_id
from overplane.storage.listing import (
    Listing,
    ListQuery,
    OneOf,
    Page,
    insert_statements,
)
from overplane.storage.schema import COUNTER_SLOTS
from overplane.storage.tenant import Tenant

ENDPOINT_PREFIX = "we_"
ATTEMPT_PREFIX = "wha_"

#: A pattern of ``enabled_events`` as a LIKE pattern: ``*`` any run of characters, ``_`` (in
#: ``party_link``) itself. Written per dialect: the JSON list is read by the database.
_PATTERN = "replace(replace({p}, '_', '\\_'), '*', '%')"
_MATCHES = {
    "postgresql": (
        "EXISTS (SELECT 1 FROM json_array_elements_text(e.enabled_events::json) AS p(pattern) "
        f"WHERE {{event_type}} LIKE {_PATTERN.format(p='p.pattern')} ESCAPE '\\')"
    ),
    "sqlite": (
        "EXISTS (SELECT 1 FROM json_each(e.enabled_events) AS p "
        f"WHERE {{event_type}} LIKE {_PATTERN.format(p='p.value')} ESCAPE '\\')"
    ),
}


def _relay_deliveries(dialect: str, taken: str) -> str:
    """INSERT of the deliveries owed by the events of ``taken`` (an SQL relation of
    account_id, livemode, event_id): one per enabled endpoint of the event's tenant whose
    patterns match its type, due at the event's time. One already there (a ``redeliver``
    came first) is left as it is."""
    return (
        "INSERT INTO webhook_deliveries (account_id, livemode, event_id, endpoint_id, "
        "created_at, attempts, next_attempt_at, state) "
        "SELECT e.account_id, e.livemode, ev.id, e.id, ev.created_at, 0, ev.created_at, "
        f"'pending' FROM {taken} JOIN events ev ON ev.account_id = taken.account_id "
        "AND ev.id = taken.event_id JOIN webhook_endpoints e ON e.account_id = taken.account_id "
        "AND e.livemode = taken.livemode WHERE NOT e.disabled AND "
        + _MATCHES[dialect].format(event_type="ev.type")
        + " ON CONFLICT (account_id, event_id, endpoint_id) DO NOTHING"
    )


def _relay_count(slot: str, source: str) -> str:
    """The upsert that adds the events of ``source`` to the tenants' counters."""
    return counter_sql(
        f"SELECT 'events', account_id, livemode, {slot}, count(*) FROM {source} "
        "WHERE TRUE GROUP BY account_id, livemode"
    )


#: PostgreSQL: the relay as one statement. ``SKIP LOCKED``: concurrent relays take different
#: rows and never wait for each other; a random counter slot, like the triggers'.
_RELAY_POSTGRES = (
    "WITH taken AS (DELETE FROM event_outbox WHERE (account_id, livemode, event_id) IN "
    "(SELECT account_id, livemode, event_id FROM event_outbox LIMIT ? FOR UPDATE SKIP LOCKED) "
    "RETURNING account_id, livemode, event_id), "
    f"counted AS ({_relay_count(f'floor(random() * {COUNTER_SLOTS})::int', 'taken')}), "
    f"made AS ({_relay_deliveries('postgresql', 'taken')}) "
    "SELECT count(*) FROM taken"
)
#: SQLite: one writer at a time, so the same batch (in key order) is read by each statement
#: of one transaction.
_SQLITE_BATCH = (
    "(SELECT account_id, livemode, event_id FROM event_outbox "
    "ORDER BY account_id, livemode, event_id LIMIT ?)"
)
_RELAY_SQLITE = (
    _relay_deliveries("sqlite", f"{_SQLITE_BATCH} AS taken"),
    _relay_count("0", _SQLITE_BATCH),
    "DELETE FROM event_outbox WHERE (account_id, livemode, event_id) IN "
    f"{_SQLITE_BATCH} RETURNING event_id",
)


class StoredEndpoint(NamedTuple):
    """One webhook endpoint as stored, its secrets included (never rendered but on create)."""

    id: str
    created_at: int
    updated_at: int
    url: str
    description: str | None
    enabled_events: tuple[str, ...]
    disabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: int | None

    @classmethod
    def read(cls, row: Row, start: int = 0) -> StoredEndpoint:
        """The endpoint in ``row``'s columns from ``start`` on, in :data:`ENDPOINT_COLUMNS`."""
        (
            endpoint_id,
            created_at,
            updated_at,
            url,
            description,
            enabled_events,
            disabled,
            secret,
            previous_secret,
            previous_expires_at,
        ) = row[start : start + 10]
        return cls(
            endpoint_id,
            created_at,
            updated_at,
            url,
            description,
            tuple(json.loads(enabled_events)),
            bool(disabled),
            secret,
            previous_secret,
            previous_expires_at,
        )

    def signing_secrets(self, now_ms: int) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the one it
        replaced while that is still honoured."""
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now_ms:
            secrets.append(self.previous_secret)
        return secrets


ENDPOINT_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "url",
    "description",
    "enabled_events",
    "disabled",
    "secret",
    "previous_secret",
    "previous_secret_expires_at",
)
_BY_ID = "id = ? AND account_id = ? AND livemode = ?"


class EndpointStore:
    """The SQL of the ``webhook_endpoints`` table."""

    def __init__(self) -> None:
        self.listing = Listing(
            "webhook_endpoints", ENDPOINT_COLUMNS, id_prefix=ENDPOINT_PREFIX, tombstones=True
        )
        self._columns = ", ".join(ENDPOINT_COLUMNS)
        self._insert = insert_statements(
            "webhook_endpoints", ("account_id", "livemode", *ENDPOINT_COLUMNS)
        )

    async def create(
        self,
        db: Executor,
        tenant: Tenant,
        *,
        url: str,
        description: str | None,
        enabled_events: Sequence[str],
        secret: str,
        now_ms: int,
    ) -> StoredEndpoint:
        """Store a new, enabled endpoint."""
        endpoint = StoredEndpoint(
            new_object_id(ENDPOINT_PREFIX),
            now_ms,
            now_ms,
            url,
            description,
            tuple(enabled_events),
            False,
            secret,
            None,
            None,
        )
        await db.execute(self._insert[db.dialect], (*tenant.args, *_row_values(endpoint)))
        return endpoint

    async def retrieve(
        self, db: Executor, tenant: Tenant, endpoint_id: str
    ) -> StoredEndpoint | None:
        """The endpoint, or None if this tenant has none with that id."""
        if not could_be_object_id(ENDPOINT_PREFIX, endpoint_id):
            return None
        row = await db.fetch_one(
            f"SELECT {self._columns} FROM webhook_endpoints WHERE {_BY_ID}",
            (endpoint_id, *tenant.args),
        )
        return None if row is None else StoredEndpoint.read(row)

    async def update(
        self,
        db: Executor,
        tenant: Tenant,
        endpoint_id: str,
        changes: Mapping[str, Any],
        now_ms: int,
    ) -> StoredEndpoint | None:
        """Set ``changes`` (url, description, enabled_events, disabled, or the secrets)."""
        if not could_be_object_id(ENDPOINT_PREFIX, endpoint_id):
            return None
        names = [name for name in ENDPOINT_COLUMNS if name in changes]
        values = [
            json.dumps(list(changes[name])) if name == "enabled_events" else changes[name]
            for name in names
        ]
        assignments = "".join(f"{name} = ?, " for name in names)
        row = await db.fetch_one(
            f"UPDATE webhook_endpoints SET {assignments}updated_at = ? WHERE {_BY_ID} "
            f"RETURNING {self._columns}",
            (*values, now_ms, endpoint_id, *tenant.args),
        )
        return None if row is None else StoredEndpoint.read(row)

    async def subscribed(self, db: Executor, tenant: Tenant, event_type: str) -> list[str]:
        """The ids of the tenant's enabled endpoints whose ``enabled_events`` match the type."""
        rows = await db.fetch_all(
            "SELECT e.id FROM webhook_endpoints e WHERE e.account_id = ? AND e.livemode = ? "
            f"AND NOT e.disabled AND {_MATCHES[db.dialect].format(event_type='?')} "
            "ORDER BY e.created_at, e.seq",
            (*tenant.args, event_type),
        )
        return [str(row[0]) for row in rows]

    async def delete(self, db: Executor, tenant: Tenant, endpoint_id: str) -> bool:
        """Delete the endpoint; its pending deliveries are given up with it."""
        if not could_be_object_id(ENDPOINT_PREFIX, endpoint_id):
            return False
        async with db.atomic() as transaction:
            row = await transaction.fetch_one(
                f"DELETE FROM webhook_endpoints WHERE {_BY_ID} RETURNING id",
                (endpoint_id, *tenant.args),
            )
            if row is None:
                return False
            await transaction.execute(
                "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, "
                "lease_until = NULL WHERE account_id = ? AND livemode = ? AND endpoint_id = ? "
                "AND state = 'pending'",
                (*tenant.args, endpoint_id),
            )
            return True

    async def list(self, db: Executor, tenant: Tenant, query: ListQuery) -> Page[StoredEndpoint]:
        """A page of the tenant's endpoints, newest first."""
        return await self.listing.list(db, tenant, query, StoredEndpoint.read)


def _row_values(endpoint: StoredEndpoint) -> tuple[Any, ...]:
    values = list(endpoint)
    values[ENDPOINT_COLUMNS.index("enabled_events")] = json.dumps(list(endpoint.enabled_events))
    return tuple(values)


class DueDelivery(NamedTuple):
    """A delivery the worker has claimed: whose, which event, which endpoint, how far along."""

    tenant: Tenant
    event_id: str
    endpoint_id: str
    attempts: int
    created_at: int


class StoredAttempt(NamedTuple):
    """One attempt to deliver an event to an endpoint, as the log keeps it."""

    id: str
    created_at: int
    event_id: str
    endpoint_id: str
    status_code: int | None
    error: str | None
    duration_ms: int
    next_retry_at: int | None

    @classmethod
    def read(cls, row: Row, start: int = 0) -> StoredAttempt:
        """The attempt in ``row``'s columns from ``start`` on, in :data:`ATTEMPT_COLUMNS`."""
        return cls(*row[start : start + 8])


ATTEMPT_COLUMNS = StoredAttempt._fields


class DeliveryStore:
    """Claiming due deliveries, recording attempts, listing an endpoint's attempts."""

    def __init__(self) -> None:
        self.attempts = Listing(
            "webhook_attempts", ATTEMPT_COLUMNS, id_prefix=ATTEMPT_PREFIX, tombstones=False
        )
        self._insert_attempt = insert_statements(
            "webhook_attempts", ("account_id", "livemode", *ATTEMPT_COLUMNS)
        )

    async def relay(self, db: Database, limit: int) -> int:
        """Take up to ``limit`` events from the outbox: make the deliveries they owe and
        count them, in one transaction; how many were taken (0: the outbox is empty)."""
        if db.dialect == "postgresql":
            row = await db.fetch_one(_RELAY_POSTGRES, (limit,))
            return 0 if row is None else int(row[0])
        deliveries, count, delete = _RELAY_SQLITE
        async with db.atomic() as transaction:
            await transaction.execute(deliveries, (limit,))
            await transaction.execute(count, (limit,))
            return len(await transaction.fetch_all(delete, (limit,)))

    async def claim(
        self, db: Database, now_ms: int, lease_until: int, limit: int
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries to this worker until ``lease_until``.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows
        and never wait for each other. SQLite: one writer at a time does the same.
        """
        skip_locked = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
        rows = await db.fetch_all(
            "UPDATE webhook_deliveries SET lease_until = ? "
            "WHERE (account_id, event_id, endpoint_id) IN (SELECT account_id, event_id, "
            "endpoint_id FROM webhook_deliveries WHERE next_attempt_at <= ? AND "
            "(lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at "
            f"LIMIT ?{skip_locked}) "
            "RETURNING account_id, livemode, event_id, endpoint_id, attempts, created_at",
            (lease_until, now_ms, now_ms, limit),
        )
        return [
            DueDelivery(
                Tenant(account_id, bool(livemode)), event_id, endpoint_id, attempts, created
            )
            for account_id, livemode, event_id, endpoint_id, attempts, created in rows
        ]

    async def record(
        self,
        db: Database,
        delivery: DueDelivery,
        *,
        now_ms: int,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        next_attempt_at: int | None,
        succeeded: bool,
    ) -> StoredAttempt:
        """Log one attempt and move the delivery on: done, due again, or given up."""
        attempt = StoredAttempt(
            new_object_id(ATTEMPT_PREFIX),
            now_ms,
            delivery.event_id,
            delivery.endpoint_id,
            status_code,
            error,
            duration_ms,
            next_attempt_at,
        )
        state = "succeeded" if succeeded else ("pending" if next_attempt_at else "failed")
        async with db.atomic() as transaction:
            await transaction.execute(
                self._insert_attempt[transaction.dialect], (*delivery.tenant.args, *attempt)
            )
            await transaction.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?, "
                "next_attempt_at = ?, lease_until = NULL WHERE account_id = ? AND event_id = ? "
                "AND endpoint_id = ?",
                (
                    state,
                    next_attempt_at,
                    delivery.tenant.account_id,
                    delivery.event_id,
                    delivery.endpoint_id,
                ),
            )
        return attempt

    async def release(self, db: Database, delivery: DueDelivery) -> None:
        """Hand a claimed delivery back unsent: due again at once, for any worker."""
        await db.execute(
            "UPDATE webhook_deliveries SET lease_until = NULL WHERE account_id = ? AND "
            "event_id = ? AND endpoint_id = ? AND state = 'pending'",
            (delivery.tenant.account_id, delivery.event_id, delivery.endpoint_id),
        )

    async def give_up(self, db: Database, delivery: DueDelivery) -> None:
        """Drop a delivery whose event or endpoint is gone (swept, deleted)."""
        await db.execute(
            "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, "
            "lease_until = NULL WHERE account_id = ? AND event_id = ? AND endpoint_id = ?",
            (delivery.tenant.account_id, delivery.event_id, delivery.endpoint_id),
        )

    async def redeliver(
        self,
        db: Executor,
        tenant: Tenant,
        event_id: str,
        endpoint_ids: Sequence[str],
        now_ms: int,
    ) -> None:
        """Make the event due now at each endpoint, whatever became of earlier deliveries (its
        retry window starts again)."""
        upsert = (
            "INSERT INTO webhook_deliveries (account_id, livemode, event_id, endpoint_id, "
            "created_at, attempts, next_attempt_at, state) VALUES (?, ?, ?, ?, ?, 0, ?, 'pending') "
            "ON CONFLICT (account_id, event_id, endpoint_id) DO UPDATE SET state = 'pending', "
            "next_attempt_at = excluded.next_attempt_at, created_at = excluded.created_at, "
            "lease_until = NULL"
        )
        async with db.atomic() as transaction:
            for endpoint_id in endpoint_ids:
                await transaction.execute(
                    upsert, (*tenant.args, event_id, endpoint_id, now_ms, now_ms)
                )

    async def list_attempts(
        self, db: Executor, tenant: Tenant, endpoint_id: str, query: ListQuery
    ) -> Page[StoredAttempt]:
        """A page of an endpoint's attempts, newest first."""
        scoped = ListQuery(
            conditions=(OneOf("endpoint_id", (endpoint_id,)), *query.conditions),
            limit=query.limit,
            offset=query.offset,
            starting_after=query.starting_after,
            ending_before=query.ending_before,
        )
        return await self.attempts.list(db, tenant, scoped, StoredAttempt.read)


async def sweep(db: Executor, before_ms: int) -> None:
    """Forget finished deliveries and attempts older than ``before_ms`` (events' retention)."""
    await db.execute(
        "DELETE FROM webhook_deliveries WHERE created_at <= ? AND next_attempt_at IS NULL",
        (before_ms,),
    )
    await db.execute("DELETE FROM webhook_attempts WHERE created_at <= ?", (before_ms,))
