"""The SQLite statement timeout's cost: ``python -m bench.statement_timeout``.

The timeout is a progress handler (``SQLiteDatabase``, ``storage/database.py``) that SQLite
calls every N virtual-machine instructions, plus a clock read per statement to set its
deadline. This measures, on a real migrated file with 10,000 appointments, the storage
layer's own retrieve and create (with its event) per second with no handler and with N in
100, 1,000 and 10,000, alternating the variants round after round so that a busy moment of
the shared machine hits them all; and how many instructions one retrieve and one create run
(N = 1 counts them), which says how often the handler runs per statement; a full scan of the
table (the handler's cost where it does run); and how late past its deadline a statement
that never ends is interrupted. The figures go into
``docs/performance.md`` ("Statement timeout") by hand.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from overplane.auth import keys
from overplane.declarations import RESOURCES
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import DatabaseUnavailable, SQLiteDatabase, open_database
from overplane.storage.events import EventOrigin
from overplane.storage.objects import ObjectStore
from overplane.storage.tenant import Tenant

SEEDED = 10_000
ROUNDS = 5
RETRIEVES = 20_000
SCANS = 50
CREATES = 1_000
#: None: no handler at all (the code before the timeout).
VARIANTS: tuple[int | None, ...] = (None, 1, 100, 1_000, 10_000)
#: A statement that reads the whole table (what a slow statement does), by the storage layer.
SCAN = "SELECT count(*) FROM crm_appointment WHERE customer_name LIKE '%z%'"
#: A statement that never ends by itself, to measure how late the timeout interrupts it.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
OVERSHOOT_TIMEOUT = 0.2


def install(db: SQLiteDatabase, every: int | None) -> None:
    """Use ``every`` as the handler's period (None: remove the handler)."""
    connection = db._connection
    if every is None:
        connection.set_progress_handler(None, 0)
    else:
        connection.set_progress_handler(db._past_deadline, every)


async def instructions(db: SQLiteDatabase, work: object) -> int:
    """How many VM instructions ``work()`` runs (a handler called at every one counts)."""
    calls = 0

    def count() -> bool:
        nonlocal calls
        calls += 1
        return False

    db._connection.set_progress_handler(count, 1)
    await work()  # type: ignore[operator]
    return calls


async def main() -> int:
    """Measure in a temporary directory, print a Markdown table, return 0."""
    with tempfile.TemporaryDirectory(prefix="overplane-bench-timeout-") as directory:
        return await measure(Path(directory))


async def measure(directory: Path) -> int:
    """Measure with the database in ``directory``; print the results."""
    url = f"sqlite:///{directory / 'bench.sqlite3'}"
    migrate.upgrade(url)
    db = await open_database(Settings(database_url=url))
    assert isinstance(db, SQLiteDatabase)
    store = ObjectStore(RESOURCES[-1])  # appointment
    tenant = Tenant(await keys.create_account(db, "bench"), False)
    values = {"customer_name": "Ada", "scheduled_time": "2024-01-15T09:30:00Z", "status": "draft"}
    origin = EventOrigin("req_bench", None)
    ids = [(await store.create(db, tenant, values, origin)).id for _ in range(SEEDED)]

    async def retrieve_one() -> None:
        await store.retrieve(db, tenant, ids[0])

    async def create_one() -> None:
        await store.create(db, tenant, values, origin)

    retrieve_instructions = await instructions(db, retrieve_one)
    create_instructions = await instructions(db, create_one)

    retrieves: dict[int | None, list[float]] = {v: [] for v in VARIANTS}
    scans: dict[int | None, list[float]] = {v: [] for v in VARIANTS}
    creates: dict[int | None, list[float]] = {v: [] for v in VARIANTS}
    for round_number in range(ROUNDS):
        order = VARIANTS if round_number % 2 == 0 else tuple(reversed(VARIANTS))
        for every in order:
            install(db, every)
            began = time.perf_counter()
            for index in range(RETRIEVES):
                await store.retrieve(db, tenant, ids[index % SEEDED])
            retrieves[every].append((time.perf_counter() - began) / RETRIEVES * 1e6)
            began = time.perf_counter()
            for _ in range(SCANS):
                await db.fetch_one(SCAN)
            scans[every].append((time.perf_counter() - began) / SCANS * 1e6)
            began = time.perf_counter()
            for _ in range(CREATES):
                await store.create(db, tenant, values, origin)
            creates[every].append((time.perf_counter() - began) / CREATES * 1e6)
    install(db, SQLiteDatabase.progress_instructions)
    db._timeout = OVERSHOOT_TIMEOUT
    overshoots = []
    for _ in range(5):
        began = time.perf_counter()
        try:
            await db.fetch_one(ENDLESS)
        except DatabaseUnavailable:
            overshoots.append((time.perf_counter() - began - OVERSHOOT_TIMEOUT) * 1000)
    await db.close()

    print(f"SQLite {__import__('sqlite3').sqlite_version}, Python {sys.version.split()[0]}")
    print(
        f"instructions per statement: retrieve {retrieve_instructions}, "
        f"create with its event (one transaction) {create_instructions}"
    )
    print(
        "| handler every N instructions | retrieve µs | full scan of 10,000 rows µs "
        "| create with event µs |"
    )
    print("|---|--:|--:|--:|")
    for every in VARIANTS:
        label = "no handler" if every is None else f"{every:,}"
        print(
            f"| {label} | {statistics.median(retrieves[every]):.1f} | "
            f"{statistics.median(scans[every]):.0f} | {statistics.median(creates[every]):.0f} |"
        )
    print(
        f"interrupted past a {OVERSHOOT_TIMEOUT * 1000:.0f} ms deadline by (ms, every "
        f"{SQLiteDatabase.progress_instructions:,}): "
        + ", ".join(f"{value:.2f}" for value in overshoots)
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
