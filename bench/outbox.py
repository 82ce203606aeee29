"""The outbox's cost at the storage layer: CPU per write with its event and without.

``python -m bench.outbox`` calls :class:`~overplane.storage.objects.ObjectStore` directly (no
HTTP, no server), so it sees only what the event adds to the write itself: on SQLite the
temporary trigger's event row, its indexes, its outbox row and the pages they dirty; on PostgreSQL
the same rows written by the statement's CTEs, and the work the PostgreSQL backends do for them
(their CPU time, read from ``/proc``, so PostgreSQL must run on this machine; its WAL writer
and checkpointer are not counted). With events on, the relay runs beside the writes as a
delivery worker runs it (``DeliveryStore.relay``: a batch, and after one that was not full a
wait of ``OVERPLANE_WEBHOOK_POLL_SECONDS``), and what it leaves at the end is relayed inside the
measurement: its CPU is part of the event's.

Method: a fresh database per backend (a temporary SQLite file; a uniquely named PostgreSQL
database, dropped at the end), migrated, with ``BENCH_SEED`` appointments (default 10,000).
For each operation, ``BENCH_REPETITIONS`` pairs (default 3) of ``OUTBOX_WRITES`` writes (default
5,000) by ``OUTBOX_CONCURRENCY`` concurrent tasks (default 8; SQLite's group commit shares a
commit among them), events off and on, the order alternating. Before each run on PostgreSQL,
``VACUUM`` of the object table, the counters and the outbox, and a ``CHECKPOINT``, so that no
run inherits the previous one's dead rows (this machine's PostgreSQL runs without
autovacuum). Reported:
the medians of CPU µs per write (this process; PostgreSQL's backends) and the pairs' median
ratio of total CPU, off / on: what the outbox leaves of a write's throughput where CPU is
the limit. Knobs: ``BENCH_BACKENDS``, ``BENCH_OPERATIONS`` (update, create, delete),
``BENCH_PG_ADMIN_URL``; the result replaces the ``outbox`` section of ``docs/performance.md``
(``BENCH_DOC``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from bench.events import BACKENDS_SQL, cpu_by_pid, cpu_since, median_ratio, operations
from bench.run import (
    APPOINTMENT as BENCH_APPOINTMENT,
)
from bench.run import (
    BACKEND_NAMES,
    Bench,
    Config,
    _env_int,
    log,
    phase_heading,
    postgres_database,
    run_phase_alone,
)
from overplane.declarations.crm import APPOINTMENT
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import Database, open_database
from overplane.storage.events import EventOrigin
from overplane.storage.objects import ObjectStore
from overplane.storage.tenant import Tenant
from overplane.storage.webhooks import DeliveryStore

SECTION = "outbox"
#: The fields every create sends: those of bench/run.py's appointment creates.
VALUES: dict[str, str] = json.loads(BENCH_APPOINTMENT.create_body)
TENANT = Tenant("acct_outbox", False)


@dataclass(frozen=True, slots=True)
class Run:
    """One run of writes: CPU µs per write in this process and in PostgreSQL's backends."""

    client_us: float
    database_us: float

    @property
    def total_us(self) -> float:
        return self.client_us + self.database_us


@dataclass(frozen=True, slots=True)
class Row:
    """One operation on one backend: the runs with events off and on, paired."""

    backend: str
    operation: str
    off: tuple[Run, ...]
    on: tuple[Run, ...]

    def median(self, events: bool, part: Callable[[Run], float]) -> float:
        return statistics.median(part(run) for run in (self.on if events else self.off))

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios of total CPU per write, off / on."""
        off = tuple(run.total_us for run in self.off)
        on = tuple(run.total_us for run in self.on)
        return median_ratio(off, on)


class Phase:
    """The writes of one backend, on an open database."""

    def __init__(self, db: Database, admin: asyncpg.Connection | None, writes: int) -> None:
        self.db = db
        self.admin = admin
        self.writes = writes
        self.store = ObjectStore(APPOINTMENT)
        self.deliveries = DeliveryStore()
        self.concurrency = _env_int("OUTBOX_CONCURRENCY", 8)
        self.runs = 0

    async def create_many(self, count: int) -> list[str]:
        """``count`` new appointments (no events), their ids."""
        ids: list[str] = []
        while len(ids) < count:
            batch = min(500, count - len(ids))
            made = await asyncio.gather(
                *(self.store.create(self.db, TENANT, VALUES) for _ in range(batch))
            )
            ids += [m.id for m in made]
        return ids

    async def _backend_pids(self) -> list[int]:
        if self.admin is None:
            return []
        rows = await self.admin.fetch(BACKENDS_SQL)
        return [row["pid"] for row in rows]

    async def run(self, operation: str, events: bool, ids: list[str]) -> Run:
        """``self.writes`` writes of ``operation`` by concurrent tasks; their CPU per write."""
        origin = EventOrigin("req_outbox", None) if events else None
        targets = ids if operation != "delete" else await self.create_many(self.writes)
        if self.admin is not None:
            await self.admin.execute(f"VACUUM {self.store.resource.table_name}")
            await self.admin.execute("VACUUM object_counts")
            await self.admin.execute("VACUUM event_outbox")
            await self.admin.execute("CHECKPOINT")
        self.runs += 1
        write = self._write(operation, origin, targets)
        database_before = cpu_by_pid(await self._backend_pids())
        client_before = time.process_time()

        async def task(first: int) -> None:
            for i in range(first, self.writes, self.concurrency):
                await write(i)

        writing = asyncio.gather(*(task(k) for k in range(self.concurrency)))
        if events:
            await self.relaying(writing)
        else:
            await writing
        client = time.process_time() - client_before
        # A backend the pool opened during the run counts from zero; one it closed is lost
        # (logged: the pool keeps what the seeding opened, so neither is expected).
        after = await self._backend_pids()
        if set(after) != set(database_before):
            log(f"outbox: PostgreSQL backends {len(database_before)} -> {len(after)} in a run")
        database = cpu_since(database_before, cpu_by_pid(after))
        return Run(client / self.writes * 1e6, database / self.writes * 1e6)

    async def relaying(self, writing: Awaitable[object]) -> None:
        """Relay the outbox as a delivery worker does (a batch; after one that was not full,
        a wait of ``webhook_poll_seconds``) while ``writing`` runs, and what is left after
        it: the relay is part of what an event costs."""
        settings = Settings()
        batch = settings.webhook_relay_batch
        done = asyncio.ensure_future(writing)
        while not done.done():
            if await self.deliveries.relay(self.db, batch) < batch:
                await asyncio.wait({done}, timeout=settings.webhook_poll_seconds)
        await done
        while await self.deliveries.relay(self.db, batch):
            pass

    def _write(
        self, operation: str, origin: EventOrigin | None, targets: list[str]
    ) -> Callable[[int], Awaitable[object]]:
        store, db = self.store, self.db
        if operation == "create":
            return lambda i: store.create(db, TENANT, VALUES, origin=origin)
        if operation == "delete":
            return lambda i: store.delete(db, TENANT, targets[i], origin=origin)
        # Each run sets the other status than the run before (seeded: draft), so every
        # update changes something.
        status = "confirmed" if self.runs % 2 else "draft"
        return lambda i: store.update(
            db, TENANT, targets[i % len(targets)], {"status": status}, origin=origin
        )


async def measure(backend: str, url: str, config: Config, chosen: tuple[str, ...]) -> list[Row]:
    """Every operation on one backend's fresh database."""
    await asyncio.to_thread(migrate.upgrade, url)
    db = await open_database(Settings(database_url=url))
    admin = await asyncpg.connect(url) if backend == "postgresql" else None
    try:
        await db.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES (?, 'outbox', 0)",
            (TENANT.account_id,),
        )
        phase = Phase(db, admin, _env_int("OUTBOX_WRITES", 5000))
        ids = await phase.create_many(config.seed_count)
        rows = []
        for operation in chosen:
            runs: dict[bool, list[Run]] = {True: [], False: []}
            for turn in range(config.repetitions):
                for events in (False, True) if turn % 2 == 0 else (True, False):
                    runs[events].append(await phase.run(operation, events, ids))
            row = Row(BACKEND_NAMES[backend], operation, tuple(runs[False]), tuple(runs[True]))
            log(
                f"outbox {row.backend:10} {operation:6} CPU µs/write off "
                f"{row.median(False, lambda r: r.total_us):.0f}, on "
                f"{row.median(True, lambda r: r.total_us):.0f}: ratio {row.ratio:.2f}"
            )
            rows.append(row)
        return rows
    finally:
        if admin is not None:
            await admin.close()
        await db.close()


def run_phase(bench: Bench) -> list[Row]:
    """Every configured backend, each on a fresh database."""
    config = bench.config
    rows: list[Row] = []
    for backend in config.backends:
        if backend == "sqlite":
            url = f"sqlite:///{bench.workdir / 'outbox.sqlite3'}"
            rows += asyncio.run(measure(backend, url, config, operations()))
            continue
        with postgres_database(config.pg_admin_url, "outbox") as url:
            rows += asyncio.run(measure(backend, url, config, operations()))
    return rows


def render(bench: Bench, rows: list[Row], wall_seconds: float, load: str) -> str:
    """The generated ``outbox`` section: when, on what, with which settings, and the table."""
    config = bench.config
    writes = _env_int("OUTBOX_WRITES", 5000)
    concurrency = _env_int("OUTBOX_CONCURRENCY", 8)
    lines = [
        *phase_heading(bench, "outbox"),
        f"Settings: {config.repetitions} pairs of {writes:,} writes by {concurrency} concurrent "
        f"tasks, {config.seed_count:,} seeded appointments, this process on CPUs "
        f"{config.client_cpus}, wall time {wall_seconds / 60:.1f} min, load average (1 min) at "
        f"start and end {load}.",
        "",
        "| backend | operation | CPU µs/write, events off: this process (SQLite runs in it) + "
        "PostgreSQL's backends | events on | the event's extra CPU µs | off / on (median of "
        "pairs) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        off_client, on_client = (row.median(e, lambda r: r.client_us) for e in (False, True))
        off_db, on_db = (row.median(e, lambda r: r.database_us) for e in (False, True))
        off_total, on_total = (row.median(e, lambda r: r.total_us) for e in (False, True))
        lines.append(
            f"| {row.backend} | {row.operation} | {off_client:.0f} + {off_db:.0f} "
            f"| {on_client:.0f} + {on_db:.0f} | {on_total - off_total:+.0f} | {row.ratio:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the phase and replace the ``outbox`` section of ``docs/performance.md``."""
    return run_phase_alone(SECTION, run_phase, render)


if __name__ == "__main__":
    sys.exit(main())
