"""Before and after one change: two versions of the code, measured in turns in one run.

``python -m bench.compare BEFORE [AFTER]`` (git revisions; AFTER defaults to the working tree)
serves each version with ``overplane serve`` on a database of its own (each migrated by its
own code), seeds both alike, and measures the operations in pairs whose order alternates, as
``bench/events.py`` does for events on and off: a slow moment of the shared machine falls on
both sides, and the ratio after / before is the median of the pairs' ratios. Each run also
records the server's CPU µs per request, which the machine's other work disturbs far less
than req/s. This is how docs/performance.md's per-change figures are made; ``make bench``
then gives the full table of the version that stays.

Knobs are ``bench/run.py``'s (``BENCH_DURATION``, ``BENCH_REPETITIONS``, ``BENCH_SEED``,
``BENCH_BACKENDS``, ...) plus ``BENCH_OPERATIONS`` (default ``create,update,list,retrieve``).
Prints a markdown table; writes nothing else.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.events import median_ratio, paired_runs, rps
from bench.loadgen import Workload
from bench.run import (
    APPOINTMENT,
    BACKEND_NAMES,
    Bench,
    Config,
    _pg_execute,
    ensure_tools,
    log,
    pin_to,
    postgres_database,
    write_lines,
)
from bench.servers import ROOT

OPERATIONS = ("create", "update", "list", "retrieve")


def source_of(revision: str | None, into: Path) -> tuple[Path, str]:
    """A copy of ``src/`` at ``revision`` (the working tree if None), and its label."""
    into.mkdir(parents=True)
    if revision is None:
        shutil.copytree(ROOT / "src", into / "src", ignore=shutil.ignore_patterns("__pycache__"))
        return into / "src", "working tree"
    archive = subprocess.run(
        ["git", "archive", revision, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    label = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    return into / "src", label.strip()


def compare_backend(
    bench: Bench,
    backend: str,
    urls: tuple[str, str],
    sources: tuple[Path, Path],
    operations: tuple[str, ...],
) -> list[str]:
    """Every operation on one backend, before against after; the table's rows."""
    name = BACKEND_NAMES[backend]
    workdir = bench.workdir
    reps = bench.config.repetitions
    rows: list[str] = []
    with (
        bench.overplane(f"before-{backend}", urls[0], source=sources[0]) as before,
        bench.overplane(f"after-{backend}", urls[1], source=sources[1]) as after,
    ):
        servers = {False: before, True: after}
        files = {}
        for side, server in servers.items():
            seeded = bench.seed(server, APPOINTMENT)
            stem = f"compare-{backend}-{int(side)}"
            files[side] = (
                write_lines(workdir / f"{stem}-ids", random.sample(seeded, len(seeded))),
                workdir / f"{stem}-created",
            )
        body = workdir / "compare-body.json"
        body.write_bytes(APPOINTMENT.create_body)
        patch = workdir / "compare-patch.json"
        patch.write_bytes(APPOINTMENT.update_body)
        path = APPOINTMENT.path
        for operation in operations:
            runs = {
                side: [Workload(operation, path, ids=ids, body=body, patch=patch, created=created)]
                * (reps + 1)
                for side, (ids, created) in files.items()
            }
            new, old, cpu, _ = paired_runs(bench, after, before, runs)
            ratio = median_ratio(rps(new), rps(old))
            cpu_new, cpu_old = statistics.median(cpu[True]), statistics.median(cpu[False])
            failed = new.failed + old.failed
            rows.append(
                f"| {name} | {operation} | {old.rps:,.0f} | {new.rps:,.0f} | {ratio:.2f} "
                f"| {cpu_old:.0f} / {cpu_new:.0f} | {old.p50_ms:.1f} / {old.p99_ms:.1f} "
                f"| {new.p50_ms:.1f} / {new.p99_ms:.1f} | {failed} |"
            )
            log(rows[-1])
    return rows


def main() -> int:
    """Compare two versions and print the table."""
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python -m bench.compare BEFORE [AFTER]")
    config = Config.from_environ()
    ensure_tools(config)
    pin_to(config.client_cpus)
    workdir = Path(tempfile.mkdtemp(prefix="overplane-bench-compare-"))
    started = time.monotonic()
    try:
        bench = Bench(config, workdir)
        raw = os.environ.get("BENCH_OPERATIONS", ",".join(OPERATIONS))
        operations = tuple(o.strip() for o in raw.split(",") if o.strip())
        before, before_label = source_of(sys.argv[1], workdir / "before")
        after, after_label = source_of(
            sys.argv[2] if len(sys.argv) == 3 else None, workdir / "after"
        )
        rows: list[str] = []
        for backend in config.backends:
            if backend == "sqlite":
                urls = (
                    f"sqlite:///{workdir / 'before.sqlite3'}",
                    f"sqlite:///{workdir / 'after.sqlite3'}",
                )
                rows += compare_backend(bench, backend, urls, (before, after), operations)
                continue
            try:
                asyncio.run(_pg_execute(config.pg_admin_url, "SELECT 1"))
            except (OSError, asyncpg.PostgresError) as exc:
                log(f"compare: PostgreSQL skipped ({exc})")
                continue
            with (
                postgres_database(config.pg_admin_url) as a,
                postgres_database(config.pg_admin_url) as b,
            ):
                rows += compare_backend(bench, backend, (a, b), (before, after), operations)
    finally:
        if not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"Before: {before_label}; after: {after_label}; {config.repetitions} pairs of "
        f"{config.duration} s, {config.connections} connections, {config.seed_count:,} seeded "
        f"appointments per side, wall time {(time.monotonic() - started) / 60:.1f} min.\n"
    )
    print(
        "| backend | operation | before req/s | after req/s | after / before (median of pairs) "
        "| CPU µs/request before / after | before p50 / p99 ms | after p50 / p99 ms | failed |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
