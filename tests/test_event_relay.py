"""The relay: events leave the outbox in batches, owed to their endpoints and counted.

An event's write leaves a row in ``event_outbox``; the relay (``DeliveryStore.relay``, run by
every delivery worker) makes the deliveries and adds the events to the counter, and the sweep
deletes expired events whichever side they are on. These tests hold the three to their
promise on both backends, each on a database of its own (the relay takes any tenant's rows):
the events total is exact before, during and after a relay and a sweep; each event is owed
once to each matching endpoint; concurrent relays and sweeps count every event once.
The HTTP tests (test_webhooks.py, test_webhook_processes.py) deliver through the worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from overplane.declarations import APPOINTMENT
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import Database, open_database
from overplane.storage.events import EventOrigin, EventStore, sweep
from overplane.storage.keys import insert_account
from overplane.storage.listing import ListQuery
from overplane.storage.objects import ObjectStore
from overplane.storage.tenant import Tenant
from overplane.storage.webhooks import DeliveryStore, EndpointStore

TENANT = Tenant("acct_relay", False)
ORIGIN = EventOrigin("req_relay", None)
VALUES = {"customer_name": "Ada", "scheduled_time": "2030-01-01T09:00:00Z", "status": "draft"}
STORE = ObjectStore(APPOINTMENT)
DELIVERIES = DeliveryStore()


def on_fresh_database(url: str, scenario: Callable[[Database], Awaitable[None]]) -> None:
    """Migrate ``url`` and run ``scenario`` on it, with TENANT's account in place."""
    migrate.upgrade(url)

    async def main() -> None:
        db = await open_database(Settings(database_url=url))
        try:
            await insert_account(db, TENANT.account_id, "relay", 1)
            await scenario(db)
        finally:
            await db.close()

    asyncio.run(main())


async def books(db: Database) -> tuple[int, int, int, int]:
    """The tenant's events: the listed total, count(*), the counter and the outbox rows
    (one statement for the last three, so they are read from one snapshot)."""
    page = await EventStore().list(db, TENANT, ListQuery(limit=1))
    row = await db.fetch_one(
        "SELECT (SELECT count(*) FROM events WHERE account_id = ? AND livemode = ?), "
        "(SELECT coalesce(sum(n), 0) FROM object_counts WHERE table_name = 'events' "
        "AND account_id = ? AND livemode = ?), "
        "(SELECT count(*) FROM event_outbox WHERE account_id = ? AND livemode = ?)",
        TENANT.args * 3,
    )
    assert row is not None
    return page.total, int(row[0]), int(row[1]), int(row[2])


async def make_events(db: Database, count: int) -> list[str]:
    """``count`` appointments created with their events; their ids."""
    made = [await STORE.create(db, TENANT, VALUES, origin=ORIGIN) for _ in range(count)]
    return [m.id for m in made]


def test_the_events_total_is_exact_before_during_and_after_the_relay(
    fresh_database_url: str,
) -> None:
    async def scenario(db: Database) -> None:
        ids = await make_events(db, 5)
        await STORE.update(db, TENANT, ids[0], {"status": "confirmed"}, origin=ORIGIN)
        await STORE.delete(db, TENANT, ids[1], origin=ORIGIN)
        assert await books(db) == (7, 7, 0, 7)
        assert await DELIVERIES.relay(db, 3) == 3
        assert await books(db) == (7, 7, 3, 4)
        assert await DELIVERIES.relay(db, 3) == 3
        assert await DELIVERIES.relay(db, 3) == 1
        assert await DELIVERIES.relay(db, 3) == 0
        assert await books(db) == (7, 7, 7, 0)

    on_fresh_database(fresh_database_url, scenario)


def test_each_event_is_owed_once_to_each_matching_enabled_endpoint(
    fresh_database_url: str,
) -> None:
    endpoints = EndpointStore()

    async def endpoint(*patterns: str) -> str:
        made = await endpoints.create(
            db_holder[0],
            TENANT,
            url="https://example.com/hooks",
            description=None,
            enabled_events=patterns,
            secret="whsec_test",
            now_ms=1,
        )
        return made.id

    db_holder: list[Database] = []

    async def scenario(db: Database) -> None:
        db_holder.append(db)
        every_appointment = await endpoint("appointment.*")
        await endpoint("party_link.created")
        created_only = await endpoint("appointment.created")
        disabled = await endpoint("*")
        await db.execute("UPDATE webhook_endpoints SET disabled = ? WHERE id = ?", (True, disabled))
        ids = await make_events(db, 2)
        await STORE.update(db, TENANT, ids[0], {"status": "confirmed"}, origin=ORIGIN)
        # A redeliver that comes before the relay keeps its own delivery (its time).
        first = await db.fetch_one(
            "SELECT id FROM events WHERE object_id = ? AND type = 'appointment.created'",
            (ids[0],),
        )
        assert first is not None
        await DELIVERIES.redeliver(db, TENANT, first[0], [every_appointment], 42)
        while await DELIVERIES.relay(db, 2):
            pass
        rows = await db.fetch_all(
            "SELECT d.endpoint_id, e.type, d.created_at FROM webhook_deliveries d "
            "JOIN events e ON e.account_id = d.account_id AND e.id = d.event_id"
        )
        owed = sorted((endpoint_id, event_type) for endpoint_id, event_type, _ in rows)
        assert owed == sorted(
            [
                (every_appointment, "appointment.created"),
                (every_appointment, "appointment.created"),
                (every_appointment, "appointment.updated"),
                (created_only, "appointment.created"),
                (created_only, "appointment.created"),
            ]
        )
        assert sum(1 for _, _, created_at in rows if created_at == 42) == 1
        assert await DELIVERIES.relay(db, 100) == 0

    on_fresh_database(fresh_database_url, scenario)


def test_a_sweep_keeps_the_total_exact_on_both_sides_of_the_relay(
    fresh_database_url: str,
) -> None:
    async def scenario(db: Database) -> None:
        await make_events(db, 6)
        cutoff = int(time.time() * 1000)
        await asyncio.sleep(0.01)
        await make_events(db, 4)
        # Some expired events counted, some still in the outbox; newer ones on both sides.
        assert await DELIVERIES.relay(db, 5) == 5
        assert await sweep(db, cutoff) == 6
        total, count, counter, outbox = await books(db)
        assert total == count == counter + outbox == 4
        assert await sweep(db, int(time.time() * 1000) + 1000) == 4
        assert await books(db) == (0, 0, 0, 0)

    on_fresh_database(fresh_database_url, scenario)


def test_concurrent_relays_and_sweeps_count_every_event_once(fresh_database_url: str) -> None:
    """Writers, four relays and a sweep at once (on PostgreSQL each on a connection of its
    own): every event ends up counted once, swept or not."""

    async def scenario(db: Database) -> None:
        await make_events(db, 50)
        cutoff = int(time.time() * 1000)
        await asyncio.sleep(0.01)

        async def relays() -> None:
            # Each relay yields to the writers between its batches (the await itself).
            while await DELIVERIES.relay(db, 7):
                pass

        async def writes() -> None:
            await asyncio.gather(*(make_events(db, 25) for _ in range(4)))

        results = await asyncio.gather(writes(), *(relays() for _ in range(4)), sweep(db, cutoff))
        while await DELIVERIES.relay(db, 7):
            pass
        assert results[-1] == 50
        assert await books(db) == (100, 100, 100, 0)

    on_fresh_database(fresh_database_url, scenario)
