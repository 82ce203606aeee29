"""Rows per second of ``overplane import`` and ``overplane export`` against a local
``overplane serve`` (defaults: one uvicorn worker, access log on), on SQLite and on
PostgreSQL (``BENCH_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``; set
it empty to skip).

For each backend: the server's own ceiling for creates with an ``Idempotency-Key`` (wrk, a
client in C that costs the machine almost nothing, when it is installed: the most any import
could reach here), a concurrency sweep of the import (``BENCH_SWEEP``, ``BENCH_RUNS`` runs of
half the rows each, interleaved, medians: to choose the default), then ``BENCH_RUNS`` runs of an import of ``BENCH_ROWS`` rows with the default
concurrency into a brand-new account, each followed by an export of them to CSV; medians.
A rerun of the last file measures replays ("already there"). Beside each import's rows/s
(wall time of the command, start-up included), the CPU time the ``overplane import`` process
itself spent per row (user + system, start-up included, from ``getrusage``): on a shared
machine the wall time moves with the others' load, the CPU per row much less. Run it as
``.venv/bin/python -m bench.data_cli``; it prints a Markdown table.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from bench.servers import VENV_BIN, free_port, overplane_command, serving
from overplane.cli.transfer import DEFAULT_CONCURRENCY

ROWS = int(os.environ.get("BENCH_ROWS", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SWEEP = [int(n) for n in os.environ.get("BENCH_SWEEP", "4,8,16,32,64").split(",") if n]
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
OVERPLANE = str(VENV_BIN / "overplane")


def write_rows(path: Path, rows: int, tag: str) -> None:
    """A CSV of ``rows`` appointments, each unique (the tag keeps runs' keys apart)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_name", "scheduled_time", "status", "customer_email"])
        for n in range(rows):
            day = n % 28 + 1
            writer.writerow(
                [f"{tag} {n}", f"2024-01-{day:02d}T09:30:00Z", "draft", f"c{n}@example.com"]
            )


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an ``overplane`` command; fail loudly."""
    result = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr}")
    return result


def new_key(database_url: str) -> str:
    """A test key of a brand-new account, made with the admin commands."""
    env = {"OVERPLANE_DATABASE_URL": database_url}
    name = f"bench-{secrets.token_hex(4)}"
    run([OVERPLANE, "accounts", "create", name], env)
    made = run([OVERPLANE, "keys", "create", "--account", name, "--json"], env)
    secret: str = json.loads(made.stdout)["secret"]
    return secret


WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/api/crm/appointment", {["Authorization"] = "Bearer KEY",
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = "wrk-" .. SEED .. "-" .. n},
    '{"customer_name":"x","scheduled_time":"2024-01-01T00:00:00Z","status":"d","customer_email":"e"}')
end
"""


def ceiling(base_url: str, key: str, directory: Path) -> float | None:
    """Creates per second the server answers to wrk (16 connections, 10 s), or None."""
    if shutil.which("wrk") is None:
        return None
    script = directory / "create.lua"
    seed = secrets.token_hex(4)
    script.write_text(WRK_SCRIPT.replace("KEY", key).replace("SEED", f'"{seed}"'))
    argv = ["wrk", "-t1", "-c16", "-d10s", "-s", str(script), base_url]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Imported(NamedTuple):
    """One import: rows per second (wall time, start-up included), the import process's CPU
    microseconds per row, and its summary."""

    rate: float
    cpu_us: float
    summary: dict[str, int]


def import_rate(path: Path, env: dict[str, str], concurrency: int) -> Imported:
    """One import of ``path``, timed."""
    started, cpu = time.perf_counter(), children_cpu()
    argv = [OVERPLANE, "import", "appointments", str(path), "--quiet", "--json"]
    result = run([*argv, "--concurrency", str(concurrency)], env)
    seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
    summary: dict[str, int] = json.loads(result.stdout)
    return Imported(summary["rows"] / seconds, cpu / summary["rows"] * 1e6, summary)


def export_rate(directory: Path, env: dict[str, str]) -> float:
    """Rows per second of one export to CSV."""
    out = directory / "export.csv"
    started = time.perf_counter()
    run([OVERPLANE, "export", "appointments", "--output", str(out), "--quiet"], env)
    seconds = time.perf_counter() - started
    with out.open() as handle:
        rows = sum(1 for _ in handle) - 1
    return rows / seconds


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database of ``backend``, dropped (PostgreSQL) at the end."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'bench.sqlite3'}"
        return
    from tests.helpers import new_postgres_database

    with new_postgres_database(PG_URL, "overplane_bench_cli") as url:
        yield url


def measure(backend: str) -> dict[str, object]:
    """The sweep, the import and export medians and the replay rate on one backend."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        with database(backend, directory) as url:
            port = free_port()
            env = {"OVERPLANE_DATABASE_URL": url}
            log = (directory / "server.log").open("wb")
            with serving(overplane_command(port), port, env=env, cpus=None, log=log):
                base = {"OVERPLANE_BASE_URL": f"http://127.0.0.1:{port}"}
                top = ceiling(base["OVERPLANE_BASE_URL"], new_key(url), directory)
                rates: dict[int, list[float]] = {c: [] for c in SWEEP}
                for number in range(RUNS):
                    for concurrency in SWEEP:
                        path = directory / f"sweep-{concurrency}-{number}.csv"
                        write_rows(path, ROWS // 2, f"sweep{concurrency}-{number}")
                        client_env = base | {"OVERPLANE_API_KEY": new_key(url)}
                        done = import_rate(path, client_env, concurrency)
                        rates[concurrency].append(done.rate)
                sweep = {c: statistics.median(r) for c, r in rates.items()}
                imports: list[float] = []
                cpu: list[float] = []
                exports: list[float] = []
                for number in range(RUNS):
                    path = directory / f"run-{number}.csv"
                    write_rows(path, ROWS, f"run{number}")
                    client_env = base | {"OVERPLANE_API_KEY": new_key(url)}
                    done = import_rate(path, client_env, DEFAULT_CONCURRENCY)
                    assert done.summary["created"] == ROWS, done.summary
                    imports.append(done.rate)
                    cpu.append(done.cpu_us)
                    exports.append(export_rate(directory, client_env))
                replay = import_rate(path, client_env, DEFAULT_CONCURRENCY)
                assert replay.summary["already_there"] == ROWS, replay.summary
    return {
        "backend": backend,
        "ceiling": top,
        "sweep": sweep,
        "import": statistics.median(imports),
        "imports": imports,
        "cpu": statistics.median(cpu),
        "cpus": cpu,
        "export": statistics.median(exports),
        "exports": exports,
        "replay": replay.rate,
        "replay_cpu": replay.cpu_us,
    }


def main() -> None:
    """Measure every backend and print the tables."""
    backends = ["sqlite", "postgres"] if PG_URL else ["sqlite"]
    results = [measure(backend) for backend in backends]
    print(f"{ROWS:,} rows per run, {RUNS} runs, default concurrency {DEFAULT_CONCURRENCY}\n")
    print(
        "| backend | server's create ceiling (wrk) | import rows/s (median) | runs "
        "| import CPU µs/row (median) | runs | export rows/s (median) | runs "
        "| rerun (all already there) rows/s | rerun CPU µs/row |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        imports = ", ".join(f"{x:,.0f}" for x in r["imports"])  # type: ignore[attr-defined]
        exports = ", ".join(f"{x:,.0f}" for x in r["exports"])  # type: ignore[attr-defined]
        cpus = ", ".join(f"{x:,.0f}" for x in r["cpus"])  # type: ignore[attr-defined]
        top = "n/a" if r["ceiling"] is None else f"{r['ceiling']:,.0f}"
        print(
            f"| {r['backend']} | {top} | {r['import']:,.0f} | {imports} | {r['cpu']:,.0f} | {cpus} "
            f"| {r['export']:,.0f} | {exports} | {r['replay']:,.0f} | {r['replay_cpu']:,.0f} |"
        )
    if not SWEEP:
        return
    print("\n| backend | " + " | ".join(f"concurrency {c}" for c in SWEEP) + " |")
    print("|---|" + "---|" * len(SWEEP))
    for r in results:
        sweep: dict[int, float] = r["sweep"]  # type: ignore[assignment]
        print(f"| {r['backend']} | " + " | ".join(f"{sweep[c]:,.0f}" for c in SWEEP) + " |")


if __name__ == "__main__":
    main()
