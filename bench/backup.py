"""The time ``overplane backup`` takes on a million objects: ``python -m bench.backup``.

Method: a migrated SQLite file gets ``BENCH_BACKUP_OBJECTS`` (1,000,000) appointments of one
account, inserted with the server's own INSERT (so the counting triggers and every index do
their work) in transactions of 10,000 rows, as ``storage/triggers.py`` advises for bulk
loads. Then :func:`overplane.storage.backup.backup_sqlite` (what the command runs) copies it
twice: on an idle database, and while a writer commits a new appointment every millisecond or
so (as a server under load would), which must neither restart the copy nor be blocked by it.
Each run reports the copy's time and the integrity check's separately. Figures go into
``docs/performance.md`` ("Backup") by hand.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

from overplane.auth import keys
from overplane.clock import now_ms
from overplane.declarations import RESOURCES
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.backup import backup_sqlite
from overplane.storage.database import open_database
from overplane.storage.ids import new_object_id
from overplane.storage.objects import ObjectStore

OBJECTS = int(os.environ.get("BENCH_BACKUP_OBJECTS", "1000000"))
BATCH = 10_000
STORE = ObjectStore(RESOURCES[-1])  # appointment
STATUSES = ("draft", "confirmed", "cancelled")


async def new_account(url: str) -> str:
    """An account made by the application, as ``overplane accounts create`` would."""
    db = await open_database(Settings(database_url=url))
    try:
        return await keys.create_account(db, "bench")
    finally:
        await db.close()


def row(account_id: str, stamp: int, number: int) -> tuple[object, ...]:
    """One appointment's INSERT arguments, in ``STORE.insert_columns`` order."""
    values = {
        "customer_name": f"Customer {number}",
        "customer_phone_number": f"+1 555 {number % 10_000:04d}",
        "customer_details": "Prefers mornings; second visit." if number % 3 == 0 else None,
        "scheduled_time": "2024-01-15T09:30:00Z",
        "status": random.choice(STATUSES),
        "customer_email": f"customer{number}@example.com",
    }
    fields = tuple(values.get(f.name) for f in STORE.resource.fields)
    times = (1_705_311_000_000_000,)  # scheduled_time__us
    return (new_object_id("appointment"), account_id, False, stamp, stamp, *fields, *times)


def fill(path: Path, account_id: str) -> float:
    """Insert ``OBJECTS`` appointments in transactions of ``BATCH``; the seconds it took."""
    began = time.monotonic()
    statement = STORE.insert_sql["sqlite"]
    stamp = now_ms()
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA synchronous = NORMAL")
        for start in range(0, OBJECTS, BATCH):
            rows = [
                row(account_id, stamp + n, n) for n in range(start, min(OBJECTS, start + BATCH))
            ]
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(statement, rows)
            connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.monotonic() - began


def write_until(path: Path, account_id: str, stop: threading.Event, done: list[int]) -> None:
    """Commit one appointment at a time until ``stop`` (a server's writes during a backup)."""
    statement = STORE.insert_sql["sqlite"]
    with closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as connection:
        while not stop.is_set():
            connection.execute(statement, row(account_id, now_ms(), OBJECTS + len(done)))
            done.append(1)
            time.sleep(0.001)


def timed_backup(source: Path, target: Path) -> tuple[float, float, int]:
    """Copy ``source`` to ``target``: the copy's seconds, the integrity check's, the size."""
    copied = backup_sqlite(str(source), target, verify=False)
    began = time.monotonic()
    with closing(sqlite3.connect(target)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return copied.seconds, time.monotonic() - began, copied.size_bytes


def main() -> int:
    """Fill, back up twice, print the figures."""
    with tempfile.TemporaryDirectory(prefix="overplane-bench-backup-") as scratch:
        directory = Path(scratch)
        source = directory / "overplane.sqlite3"
        url = f"sqlite:///{source}"
        migrate.upgrade(url)
        account_id = asyncio.run(new_account(url))
        fill_seconds = fill(source, account_id)
        size = source.stat().st_size
        print(
            f"SQLite {sqlite3.sqlite_version}; {OBJECTS:,} appointments ({size / 2**20:.0f} MiB) "
        )
        print(f"inserted in {fill_seconds:.1f} s ({OBJECTS / fill_seconds:,.0f} rows/s)")

        idle = timed_backup(source, directory / "idle.sqlite3")
        stop = threading.Event()
        done: list[int] = []
        writer = threading.Thread(target=write_until, args=(source, account_id, stop, done))
        writer.start()
        time.sleep(0.5)
        before = len(done)
        try:
            loaded = timed_backup(source, directory / "loaded.sqlite3")
        finally:
            during = len(done) - before
            stop.set()
            writer.join()
        print("| run | copy s | MiB/s | integrity_check s |")
        print("|---|--:|--:|--:|")
        for name, (copy_s, check_s, size_bytes) in (("idle", idle), ("writer committing", loaded)):
            print(f"| {name} | {copy_s:.1f} | {size_bytes / 2**20 / copy_s:.0f} | {check_s:.1f} |")
        print(f"the writer committed {during} inserts during the second copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
