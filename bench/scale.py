"""The scale benchmark: list latency at 10k, 100k and 1M objects in one account.

``make bench-scale`` (``python -m bench.scale``) loads appointments into one account through the
database layer (sqlite3 ``executemany``, asyncpg ``COPY``: the triggers that keep the totals fire
for every row, as for API writes), growing the account to each size in turn, and at each size
measures p50/p99 latency of:

- the unfiltered list (``?limit=20``), whose exact total comes from the counter rows;
- one equality filter (``status=confirmed``: a third of the account, counted through its index);
- a ``scheduled_time`` range of one day (about 1,300 objects);
- a deep offset (``offset`` = half the account) and a cursor page at the same depth.

wrk sends the requests over one connection (latency, not throughput), pinned to another core
than the server. Then, at 64 connections, it measures create throughput with the counting
triggers installed and with them dropped, alternating, for the cost of exact totals.

Knobs: ``BENCH_SCALE_SIZES`` (``10000,100000,1000000``), ``BENCH_BACKENDS``
(``sqlite,postgresql``), ``BENCH_DURATION`` (seconds per run, 4), ``BENCH_REPETITIONS`` (3),
``BENCH_PG_URL``. Results replace the scale section of docs/performance.md.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import replace_section
from bench.run import machine, new_key, postgres_database, versions
from bench.servers import free_port, overplane_command, serving
from overplane.auth import keys
from overplane.declarations import APPOINTMENT
from overplane.rfc3339 import format_ms
from overplane.settings import Settings
from overplane.storage import migrate, triggers
from overplane.storage.database import is_postgres, open_database, sqlite_path
from overplane.storage.ids import new_object_id
from overplane.storage.objects import ObjectStore, time_us

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
SECTION = "scale"
T0_MS = 1_700_000_000_000  # the first loaded object's created_at
STATUSES = ("draft", "confirmed", "cancelled")
SERVER_CPUS, CLIENT_CPUS = (
    os.environ.get("BENCH_SERVER_CPUS", "0"),
    os.environ.get("BENCH_CLIENT_CPUS", "1"),
)
INSERT = ObjectStore(APPOINTMENT)
#: Rows per loading transaction (see load()).
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Latency:
    """Medians over the runs of one query at one size (min-max of the p50s alongside)."""

    p50_ms: float
    p99_ms: float
    p50_range: tuple[float, float]


def log(message: str) -> None:
    """Progress on standard error, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def appointment_rows(account_id: str, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """Rows ``start`` to ``stop`` of the synthetic account, in ``INSERT.insert_columns`` order.

    created_at grows by 1 ms per row; scheduled_time is one minute apart, and every tenth value
    is not a date; status cycles through three values; party through a hundred.
    """
    for i in range(start, stop):
        stamp = T0_MS + i
        scheduled = "scheduled_time_example" if i % 10 == 9 else format_ms(T0_MS + i * 60_000)
        fields = {
            "customer_name": f"customer {i}",
            "scheduled_time": scheduled,
            "status": STATUSES[i % 3],
            "customer_email": f"c{i}@example.com",
            "party": f"party_{i % 100}",
        }
        values = [fields.get(f.name) for f in APPOINTMENT.fields]
        yield (
            new_object_id(APPOINTMENT.id_prefix),
            account_id,
            False,
            stamp,
            stamp,
            *values,
            time_us(scheduled),
        )


async def prepare(database_url: str, key: str) -> str:
    """Create the account and its key (the schema is migrated); return the account id."""
    db = await open_database(Settings(database_url=database_url))
    try:
        account_id = await keys.create_account(db, "scale")
        await keys.register_key(db, "scale", key)
        return account_id
    finally:
        await db.close()


def load(database_url: str, account_id: str, start: int, stop: int) -> list[str]:
    """Insert rows ``start``…``stop`` through the database layer; return their ids in order."""
    rows = list(appointment_rows(account_id, start, stop))
    if is_postgres(database_url):

        async def copy() -> None:
            # One COPY (one transaction) per chunk: the counting trigger updates the same few
            # counter rows for every row, and within one transaction each update lengthens
            # their version chains, so one huge COPY slows down quadratically.
            connection = await asyncpg.connect(database_url)
            try:
                for chunk in range(0, len(rows), CHUNK):
                    await connection.copy_records_to_table(
                        APPOINTMENT.table_name,
                        records=rows[chunk : chunk + CHUNK],
                        columns=list(INSERT.insert_columns),
                    )
            finally:
                await connection.close()

        asyncio.run(copy())
    else:
        with sqlite3.connect(sqlite_path(database_url), isolation_level=None) as connection:
            for chunk in range(0, len(rows), CHUNK):
                connection.execute("BEGIN")
                connection.executemany(INSERT.insert_sql["sqlite"], rows[chunk : chunk + CHUNK])
                connection.execute("COMMIT")
    return [row[0] for row in rows]


def run_ddl(database_url: str, statements: Sequence[str]) -> None:
    """Run DDL statements on the database (to drop or recreate the counting triggers)."""
    if is_postgres(database_url):

        async def execute() -> None:
            connection = await asyncpg.connect(database_url)
            try:
                for statement in statements:
                    await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(execute())
    else:
        with sqlite3.connect(sqlite_path(database_url), isolation_level=None) as connection:
            for statement in statements:
                connection.execute(statement)


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, key: str, seconds: int, connections: int, script: Path | None = None
) -> tuple[float, float, float]:
    """One wrk run: requests/s, p50 and p99 in ms; fails on any non-2xx response."""
    command = ["taskset", "-c", CLIENT_CPUS, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--latency", "-H", f"Authorization: Bearer {key}", url]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"failed requests in {url}:\n{out}")
    latency = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _LATENCY.finditer(out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, latency["50"], latency["99"]


def measure(url: str, key: str, seconds: int, repetitions: int) -> Latency:
    """Medians over ``repetitions`` one-connection runs, after a one-second warm-up."""
    wrk(url, key, 1, 1)
    runs = [wrk(url, key, seconds, 1) for _ in range(repetitions)]
    p50s = [r[1] for r in runs]
    return Latency(
        statistics.median(p50s), statistics.median(r[2] for r in runs), (min(p50s), max(p50s))
    )


def scenarios(size: int, ids: list[str]) -> dict[str, str]:
    """The query string of each measured list, for an account of ``size`` objects."""
    middle_day = datetime.fromtimestamp((T0_MS + size // 2 * 60_000) / 1000, UTC).date()
    start, end = f"{middle_day}T00:00:00Z", f"{middle_day}T23:59:59.999Z"
    depth = size // 2
    # The list is newest first: the object at depth d was loaded (size - 1 - d)-th.
    return {
        "unfiltered": "limit=20",
        "equality (status)": "limit=20&status=confirmed",
        "scheduled_time range (1 day)": f"limit=20&scheduled_time[gte]={start}&scheduled_time[lte]={end}",
        "offset = size/2": f"limit=20&offset={depth}",
        "cursor at size/2": f"limit=20&starting_after={ids[size - 1 - depth]}",
    }


CREATE_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customer_name":"a","scheduled_time":"2024-01-15T09:30:00Z","status":"draft","customer_email":"c"}'
"""


def create_cost(
    database_url: str, base: str, key: str, seconds: int, repetitions: int
) -> tuple[float, float]:
    """Median creates/s at 64 connections with the counting triggers, and without them."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(CREATE_SCRIPT)
    table, dialect = APPOINTMENT.table_name, "postgresql" if is_postgres(database_url) else "sqlite"
    url = base + APPOINTMENT.path
    with_triggers, without = [], []
    wrk(url, key, 2, 64, script)
    for _ in range(repetitions):
        with_triggers.append(wrk(url, key, seconds, 64, script)[0])
        run_ddl(database_url, triggers.drop_statements(table, dialect))
        without.append(wrk(url, key, seconds, 64, script)[0])
        run_ddl(database_url, triggers.create_statements(table, dialect))
    script.unlink()
    return statistics.median(with_triggers), statistics.median(without)


def bench_backend(
    database_url: str, sizes: list[int], seconds: int, repetitions: int
) -> tuple[dict[int, dict[str, Latency]], tuple[float, float], dict[int, float]]:
    """Every figure of one backend: latencies per size, create cost, load times."""
    key = new_key()
    migrate.upgrade(database_url)
    account_id = asyncio.run(prepare(database_url, key))
    ids: list[str] = []
    results: dict[int, dict[str, Latency]] = {}
    load_seconds: dict[int, float] = {}
    for size in sizes:
        started = time.monotonic()
        ids += load(database_url, account_id, len(ids), size)
        load_seconds[size] = time.monotonic() - started
        log(f"{database_url.split(':')[0]}: {size} objects loaded in {load_seconds[size]:.0f} s")
        if is_postgres(database_url):
            run_ddl(database_url, [f"ANALYZE {APPOINTMENT.table_name}"])
        port = free_port()
        env = {"OVERPLANE_DATABASE_URL": database_url, "OVERPLANE_ACCESS_LOG": "false"}
        with (
            open(os.devnull, "wb") as devnull,
            serving(
                overplane_command(port), port, env=env, cpus=SERVER_CPUS, log=devnull
            ) as server,
        ):
            base = server.base_url
            results[size] = {
                name: measure(f"{base}{APPOINTMENT.path}?{query}", key, seconds, repetitions)
                for name, query in scenarios(size, ids).items()
            }
            for name, latency in results[size].items():
                log(
                    f"  {size:>9,} {name:<30} p50 {latency.p50_ms:8.2f} ms  p99 {latency.p99_ms:8.2f} ms"
                )
            if size == sizes[-1]:
                cost = create_cost(database_url, base, key, seconds, repetitions)
                log(f"  creates/s with counters {cost[0]:.0f}, without {cost[1]:.0f}")
    return results, cost, load_seconds


def render(
    all_results: dict[
        str, tuple[dict[int, dict[str, Latency]], tuple[float, float], dict[int, float]]
    ],
    seconds: int,
    repetitions: int,
) -> str:
    """The markdown section: one latency table per backend, then the two bounds."""
    info = machine()
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {info['CPU']} ({info['nproc']} "
        f"cores, {info['memory']}); {', '.join(f'{k} {v}' for k, v in versions().items())}. "
        f"p50/p99 in ms: medians of {repetitions} runs of {seconds} s over one connection "
        "(min-max of the p50s in brackets).",
        "",
    ]
    for backend, (results, (with_counters, without), load_seconds) in all_results.items():
        sizes = sorted(results)
        lines += [
            f"**{backend}**",
            "",
            "| query | " + " | ".join(f"{s:,} objects" for s in sizes) + " |",
        ]
        lines.append("|---|" + "---|" * len(sizes))
        for name in results[sizes[0]]:
            cells = []
            for s in sizes:
                lat = results[s][name]
                cells.append(
                    f"{lat.p50_ms:.2f} / {lat.p99_ms:.2f} ({lat.p50_range[0]:.2f}-{lat.p50_range[1]:.2f})"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        first, last = (
            results[sizes[0]]["unfiltered"].p50_ms,
            results[sizes[-1]]["unfiltered"].p50_ms,
        )
        ratio = last / first
        cost = 1 - with_counters / without
        lines += [
            "",
            f"- Unfiltered list p50 at {sizes[-1]:,} vs {sizes[0]:,}: {last:.2f} / {first:.2f} ms = "
            f"**{ratio:.2f}×** (bound: ≤ 2×, {'met' if ratio <= 2 else 'NOT met'}).",
            f"- Creates/s at 64 connections with the counting triggers {with_counters:,.0f}, without "
            f"{without:,.0f}: the counters cost **{cost:.1%}** (bound: ≤ 10%, "
            f"{'met' if cost <= 0.10 else 'NOT met'}).",
            f"- Loading took {', '.join(f'{s:,}: {t:.0f} s' for s, t in load_seconds.items())} (cumulative sizes).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    """Run the scale benchmark on each backend and update docs/performance.md."""
    sizes = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "10000,100000,1000000").split(",")]
    backends = os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(",")
    seconds = int(os.environ.get("BENCH_DURATION", "4"))
    repetitions = int(os.environ.get("BENCH_REPETITIONS", "3"))
    results = {}
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as directory:
            results["SQLite"] = bench_backend(
                f"sqlite:///{directory}/scale.sqlite3", sizes, seconds, repetitions
            )
    if "postgresql" in backends:
        admin = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        with postgres_database(admin) as url:
            results["PostgreSQL"] = bench_backend(url, sizes, seconds, repetitions)
    section = render(results, seconds, repetitions)
    print(section)
    replace_section(DOC, SECTION, section)


if __name__ == "__main__":
    main()
