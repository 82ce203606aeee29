"""Events: the cost of the outbox on writes. ``python -m bench.events`` alone; ``make bench``
runs it too, after the other phases (``BENCH_EVENTS=0`` leaves it out).

Every accepted create, update and delete writes its event in the same statement (PostgreSQL)
or transaction (SQLite), and the deliveries it owes (none here: no webhook endpoint). The
issue's target: with events on, at most 20% fewer req/s than with them off, in one run.

Method: on each backend, two ``overplane serve`` processes on **one** database, one with
``OVERPLANE_EVENTS=true`` and one with ``false``, both running their webhook worker (the
default), which finds nothing to deliver. The measured one runs on the server core, the idle
one waits on the wrk core: on SQLite its key watch wakes for every write the measured one
makes, which took 9-12% of the server core when both shared it. Appointments are seeded
through the events-on server. For update, create and delete, in that order: a warm-up of
each, then ``BENCH_REPETITIONS`` pairs of ``BENCH_DURATION`` s runs, the order within a pair
alternating (on/off, off/on, ...) so that neither side always gets the fresher database or
the quieter moment. The ratio is the median
of the pairs' ratios (events on / events off). Each side's updates walk its own half of the
seeded appointments, and its deletes the ids its own creates made, so neither side works on
rows the other has already changed: the update sets ``status`` to ``confirmed``, and only an
appointment's first update changes it (moving its entry in the status index, a random page).
Until 2026-12-01 both sides walked the same ids from the start, so the side that went first
(events on, in the warm-up and the first pair) made nearly all those changes and the other
mostly rewrote a status it already had (docs/performance.md, "A fairer update"). Knobs are
``bench/run.py``'s, and ``BENCH_OPERATIONS`` (some of update, create, delete); the result
replaces the ``events`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.loadgen import RunResult, Workload
from bench.report import Summary
from bench.run import (
    APPOINTMENT,
    BACKEND_NAMES,
    Bench,
    _pg_execute,
    log,
    phase_heading,
    pin_process,
    postgres_database,
    run_phase_alone,
    write_lines,
)
from bench.servers import Server

#: The docs/performance.md section this phase owns.
SECTION = "events"
#: The issue's target: events on may cost at most this share of the req/s.
TARGET_RATIO = 0.80
OPERATIONS = ("update", "create", "delete")


def operations() -> tuple[str, ...]:
    """The operations to measure: ``BENCH_OPERATIONS`` (comma-separated), all by default."""
    chosen = {o.strip() for o in os.environ.get("BENCH_OPERATIONS", "").split(",") if o.strip()}
    if chosen - set(OPERATIONS):
        raise SystemExit(f"BENCH_OPERATIONS: unknown {', '.join(sorted(chosen - set(OPERATIONS)))}")
    if "delete" in chosen:
        chosen.add("create")  # each side's deletes walk the ids its own creates made
    return tuple(o for o in OPERATIONS if o in chosen) or OPERATIONS


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime and stime fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The client backends of the connection's database, other than the connection's own.
BACKENDS_SQL = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def backends_cpu(database_url: str) -> dict[int, float]:
    """The CPU seconds each PostgreSQL backend serving ``database_url`` has used so far
    (PostgreSQL must run on this machine: read from /proc)."""

    async def pids() -> list[int]:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            return [row["pid"] for row in await connection.fetch(BACKENDS_SQL)]
        finally:
            await connection.close()

    return cpu_by_pid(asyncio.run(pids()))


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """The CPU seconds each of ``pids`` has used so far (one that has ended is left out)."""
    spent = {}
    for pid in pids:
        try:
            spent[pid] = cpu_seconds(pid)
        except FileNotFoundError:  # the process ended since it was listed
            continue
    return spent


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two :func:`cpu_by_pid` snapshots; a backend that opened
    in between counts from zero (one that closed is lost: pools keep theirs, so rare)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@dataclass(frozen=True, slots=True)
class EventsRow:
    """One write operation on one backend, with events on and off, paired run by run.

    Besides req/s, each run records the server's CPU time per request: on a machine shared
    with other work, req/s of a server pinned to one core falls whenever the core is lent
    elsewhere, while the CPU time a request costs moves much less. The CPU ratio
    (off / on) is what a dedicated core would give, if the server is CPU-bound.

    On PostgreSQL, each run also records the CPU time PostgreSQL's backends spent per request
    (every backend of the bench's database; its background processes not counted). Here
    PostgreSQL shares the two cores with the server and wrk, so its extra work for an event
    comes out of the server's req/s; where the database has cores of its own, each tier's
    CPU ratio says what events cost that tier's capacity, and the ratio of the two together
    what they cost in all.
    """

    backend: str
    operation: str
    on: Summary
    off: Summary
    #: Server CPU µs per request of each measured run, events on and off.
    cpu_on: tuple[float, ...]
    cpu_off: tuple[float, ...]
    #: PostgreSQL's backends' CPU µs per request of each measured run (empty on SQLite).
    database_cpu_on: tuple[float, ...] = ()
    database_cpu_off: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios: req/s with events / req/s without."""
        return median_ratio(rps(self.on), rps(self.off))

    @property
    def cpu_ratio(self) -> float:
        """The median of the pairs' CPU ratios: CPU per request without / with events."""
        return median_ratio(self.cpu_off, self.cpu_on)

    @property
    def database_cpu_ratio(self) -> float | None:
        """The same for PostgreSQL's CPU per request; None on SQLite."""
        if not self.database_cpu_on:
            return None
        return median_ratio(self.database_cpu_off, self.database_cpu_on)

    @property
    def total_cpu_ratio(self) -> float | None:
        """The same for the server's and PostgreSQL's CPU per request together."""
        if not self.database_cpu_on:
            return None
        on = tuple(map(sum, zip(self.cpu_on, self.database_cpu_on, strict=True)))
        off = tuple(map(sum, zip(self.cpu_off, self.database_cpu_off, strict=True)))
        return median_ratio(off, on)

    @property
    def failed(self) -> int:
        return self.on.failed + self.off.failed


def median_ratio(numerators: tuple[float, ...], denominators: tuple[float, ...]) -> float:
    """The median of the pairs' ratios, run by run."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def rps(summary: Summary) -> tuple[float, ...]:
    """The req/s of each run of ``summary``."""
    return tuple(run.rps for run in summary.runs)


#: Each side's CPU µs per request, run by run: the server's, or PostgreSQL's backends'.
CpuPerRequest = dict[bool, tuple[float, ...]]


def paired_runs(
    bench: Bench,
    on: Server,
    off: Server,
    runs: dict[bool, list[Workload]],
    database_url: str | None = None,
) -> tuple[Summary, Summary, CpuPerRequest, CpuPerRequest]:
    """Warm both up (each side's first workload), then run the repetitions in pairs,
    alternating which side goes first; with each side's server CPU µs per request and,
    given a PostgreSQL ``database_url``, its backends' CPU µs per request."""
    config = bench.config
    servers = {True: on, False: off}
    for events in (True, False):
        bench.run_once(servers[events], runs[events][0], config.warmup, None)
    measured: dict[bool, list[RunResult]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    database_cpu: dict[bool, list[float]] = {True: [], False: []}
    for repetition in range(config.repetitions):
        order = (True, False) if repetition % 2 == 0 else (False, True)
        for events in order:
            workload = runs[events][repetition + 1]
            # The idle side waits on the wrk core (module docstring).
            for pid in servers[not events].worker_pids():
                pin_process(pid, config.client_cpus)
            pids = servers[events].worker_pids()
            for pid in pids:
                pin_process(pid, config.server_cpus)
            database_before = backends_cpu(database_url) if database_url else {}
            before = sum(map(cpu_seconds, pids))
            result = bench.run_once(servers[events], workload, config.duration, None)
            measured[events].append(result)
            spent = sum(map(cpu_seconds, pids)) - before
            requests = max(result.requests, 1)
            cpu[events].append(spent / requests * 1e6)
            if database_url:
                database_spent = cpu_since(database_before, backends_cpu(database_url))
                database_cpu[events].append(database_spent / requests * 1e6)
    summaries = Summary(tuple(measured[True])), Summary(tuple(measured[False]))
    return (
        *summaries,
        {e: tuple(v) for e, v in cpu.items()},
        {e: tuple(v) for e, v in database_cpu.items()},
    )


def measure_backend(bench: Bench, backend: str, database_url: str) -> list[EventsRow]:
    """Update, create and delete with events on and off, on one database."""
    name = BACKEND_NAMES[backend]
    workdir = bench.workdir
    reps = bench.config.repetitions
    rows: list[EventsRow] = []
    with (
        bench.overplane(f"events-on-{backend}", database_url, events=True) as on,
        bench.overplane(f"events-off-{backend}", database_url, events=False) as off,
    ):
        seeded = bench.seed(on, APPOINTMENT)
        shuffled = random.sample(seeded, len(seeded))
        # Each side updates its own half of the appointments (module docstring).
        half = len(shuffled) // 2
        own_ids = {
            e: write_lines(workdir / f"events-{backend}-{e}-ids", part)
            for e, part in ((True, shuffled[:half]), (False, shuffled[half:]))
        }
        body = workdir / f"events-{backend}-body.json"
        body.write_bytes(APPOINTMENT.create_body)
        patch = workdir / f"events-{backend}-patch.json"
        patch.write_bytes(APPOINTMENT.update_body)
        created = {e: workdir / f"events-{backend}-{e}-created" for e in (True, False)}
        path = APPOINTMENT.path
        for operation in operations():
            if operation == "update":
                runs = {
                    e: [Workload("update", path, ids=own_ids[e], patch=patch)] * (reps + 1)
                    for e in (True, False)
                }
            elif operation == "create":
                runs = {
                    e: [Workload("create", path, body=body, created=created[e])] * (reps + 1)
                    for e in (True, False)
                }
            else:  # each side deletes what its own creates made: [warm-up, run 1, ...]
                runs = {
                    True: bench.delete_workloads(on, APPOINTMENT, created[True]),
                    False: bench.delete_workloads(off, APPOINTMENT, created[False]),
                }
            postgres_url = database_url if backend == "postgresql" else None
            with_events, without, cpu, db_cpu = paired_runs(bench, on, off, runs, postgres_url)
            row = EventsRow(
                name,
                operation,
                with_events,
                without,
                cpu[True],
                cpu[False],
                db_cpu[True],
                db_cpu[False],
            )
            rows.append(row)
            flag = f"  FAILED {row.failed}" if row.failed else ""
            database = (
                f"  PostgreSQL CPU µs/request {statistics.median(row.database_cpu_on):.0f} / "
                f"{statistics.median(row.database_cpu_off):.0f}  total CPU ratio "
                f"{row.total_cpu_ratio:.2f}"
                if row.total_cpu_ratio is not None
                else ""
            )
            log(
                f"events     {name:10} {operation:6} on {with_events.rps:8,.0f} req/s  "
                f"off {without.rps:8,.0f} req/s  ratio {row.ratio:.2f}  CPU µs/request "
                f"{statistics.median(row.cpu_on):.0f} / {statistics.median(row.cpu_off):.0f}"
                f"  CPU ratio {row.cpu_ratio:.2f}{database}{flag}"
            )
    return rows


def run_phase(bench: Bench) -> list[EventsRow]:
    """The phase on every configured backend (PostgreSQL skipped if unreachable)."""
    rows: list[EventsRow] = []
    for backend in bench.config.backends:
        if backend == "sqlite":
            rows += measure_backend(bench, backend, f"sqlite:///{bench.workdir / 'events.sqlite3'}")
            continue
        admin_url = bench.config.pg_admin_url
        try:
            asyncio.run(_pg_execute(admin_url, "SELECT 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            log(f"events: PostgreSQL skipped: cannot connect to {admin_url} ({exc})")
            continue
        with postgres_database(admin_url) as url:
            rows += measure_backend(bench, backend, url)
    return rows


def table(rows: list[EventsRow]) -> list[str]:
    """The markdown table of the phase."""
    lines = [
        "| backend | operation | events on req/s | min – max | events off req/s | min – max "
        "| on / off (median of pairs) | target ≥ 0.80 | server CPU µs/request on / off "
        "| CPU ratio off / on | PostgreSQL CPU µs/request on / off | its CPU ratio "
        "| server + PostgreSQL CPU ratio | p99 ms on / off | failed |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        on, off = row.on, row.off
        verdict = "met" if row.ratio >= TARGET_RATIO else "**not met**"
        verdict = "invalid" if row.failed else verdict
        database = "– | – | –"
        if row.database_cpu_ratio is not None and row.total_cpu_ratio is not None:  # PostgreSQL
            database = (
                f"{statistics.median(row.database_cpu_on):.0f} / "
                f"{statistics.median(row.database_cpu_off):.0f} "
                f"| {row.database_cpu_ratio:.3f} | {row.total_cpu_ratio:.3f}"
            )
        lines.append(
            f"| {row.backend} | {row.operation} | {on.rps:,.0f} "
            f"| {on.rps_min:,.0f} – {on.rps_max:,.0f} | {off.rps:,.0f} "
            f"| {off.rps_min:,.0f} – {off.rps_max:,.0f} | {row.ratio:.3f} | {verdict} "
            f"| {statistics.median(row.cpu_on):.0f} / {statistics.median(row.cpu_off):.0f} "
            f"| {row.cpu_ratio:.3f} | {database} "
            f"| {on.p99_ms:.1f} / {off.p99_ms:.1f} | {row.failed} |"
        )
    return lines


def render(bench: Bench, rows: list[EventsRow], wall_seconds: float, load: str) -> str:
    """The generated ``events`` section: when, on what, with which settings, and the table."""
    config = bench.config
    return "\n".join(
        [
            *phase_heading(bench, "events"),
            f"Settings: {config.repetitions} pairs of {config.duration} s runs after "
            f"{config.warmup} s warm-ups, {config.connections} connections, "
            f"{config.seed_count:,} seeded appointments, server CPUs {config.server_cpus}, "
            f"wrk CPUs {config.client_cpus}, wall time {wall_seconds / 60:.1f} min, "
            f"load average (1 min) at start and end {load}.",
            "",
            *table(rows),
        ]
    )


def main() -> int:
    """Run the phase alone and replace the ``events`` section of ``docs/performance.md``."""
    return run_phase_alone(SECTION, run_phase, render)


if __name__ == "__main__":
    sys.exit(main())
