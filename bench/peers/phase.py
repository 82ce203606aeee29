"""The peers: Overplane against Django REST Framework and FastAPI + SQLModel, in one run.
``python -m bench.peers`` alone; ``make bench`` runs it too, after the other phases
(``BENCH_PEERS=0`` leaves it out).

The peers (``bench/peers/drf``, ``bench/peers/fastapi_sqlmodel``) serve the same two resources
as their tutorials would write them; docs/performance.md, "The peers", says how. They live in a
virtual environment of their own, ``.bench-peers/venv``, made on first use from
``bench/peers/requirements.txt`` (and made again when that file changes): the server never
imports them and the package does not depend on them.

Method: on each backend, three servers, each on a database of its own (a new SQLite file; a
new PostgreSQL database, dropped afterwards) and each pinned to the server core (two idle
while the third is measured): ``overplane serve``, the DRF peer on gunicorn (its default sync
worker, one worker) and the FastAPI peer on uvicorn (one process). Each gets ``BENCH_SEED``
appointments: Overplane through its API (bench/seed.py's concurrent raw HTTP/1.1, as in the
main phase), the peers through their ORM in one transaction (at one commit per object, their
SQLite default journal would take minutes, and the FastAPI peer answers some concurrent
writes with "database is locked"). Then retrieve,
list (``?limit=20``), update (PATCH) and create, in that order, exactly as the main phase
sends them (bench/scenario.lua): per operation a warm-up of each server, then
``BENCH_REPETITIONS`` rounds in which each server runs ``BENCH_DURATION`` s right after a
``BENCH_CEILING_SECONDS`` run of the ceiling. Overplane / best peer is the median of the
rounds' ratios (Overplane's run over the run of the peer with the higher median), so a busy
moment of the shared machine falls on one round, not on one server. Any failed request marks
a figure invalid. Knobs are ``bench/run.py``'s; the result replaces the ``peers`` section of
``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

from bench import seed
from bench.loadgen import Workload
from bench.report import Summary
from bench.run import (
    APPOINTMENT,
    BACKEND_NAMES,
    Arm,
    Bench,
    _env_flag,
    _pg_execute,
    load_average,
    log,
    phase_heading,
    postgres_database,
    run_phase_alone,
    write_lines,
)
from bench.servers import ROOT, Server, free_port, serving

#: The docs/performance.md section this phase owns.
SECTION = "peers"
PEERS_DIR = Path(__file__).resolve().parent
REQUIREMENTS = PEERS_DIR / "requirements.txt"
VENV = ROOT / ".bench-peers" / "venv"
OVERPLANE, DRF, FASTAPI = "Overplane", "DRF", "FastAPI+SQLModel"
SERVERS = (OVERPLANE, DRF, FASTAPI)
PEERS = (DRF, FASTAPI)
#: Short names for files, logs and database names.
SLUGS = {OVERPLANE: "overplane", DRF: "drf", FASTAPI: "fastapi"}
OPERATIONS = ("retrieve", "list", "update", "create")
#: The issue's target: creates at least this many times the best peer's.
CREATE_TARGET = 10.0
#: The packages whose versions the report names.
PEER_PACKAGES = (
    "Django",
    "djangorestframework",
    "gunicorn",
    "psycopg",
    "fastapi",
    "sqlmodel",
    "SQLAlchemy",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
)


def drf_conn_max_age() -> str:
    """``DJANGO_CONN_MAX_AGE`` as the DRF peer reads it (Django's default: 0)."""
    return os.environ.get("DJANGO_CONN_MAX_AGE", "").strip() or "0"


def enabled() -> bool:
    """``BENCH_PEERS`` (default on): whether ``make bench`` runs this phase."""
    return _env_flag("BENCH_PEERS", True)


def ensure_venv() -> Path:
    """The peers' virtual environment (made or brought up to date); its ``bin`` directory."""
    bin_dir = VENV / "bin"
    stamp = VENV / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if (bin_dir / "python").exists() and stamp.exists() and stamp.read_text() == wanted:
        return bin_dir
    log(f"installing the peers into {VENV} from {REQUIREMENTS.relative_to(ROOT)}")
    if not (bin_dir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            *(str(bin_dir / "python"), "-m", "pip", "install", "--quiet"),
            *("--disable-pip-version-check", "-r", str(REQUIREMENTS)),
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return bin_dir


def peer_versions(bin_dir: Path) -> dict[str, str]:
    """The versions of what the peers run on, read in their own environment."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        found[name] = 'absent'\n"
        "print(json.dumps(found))\n"
    )
    completed = subprocess.run(
        [str(bin_dir / "python"), "-c", script, *PEER_PACKAGES],
        capture_output=True,
        text=True,
        check=True,
    )
    versions: dict[str, str] = json.loads(completed.stdout)
    return versions


# -- databases and servers -----------------------------------------------------------------


@contextmanager
def database(bench: Bench, backend: str, slug: str) -> Iterator[str]:
    """A database of its own for one server: a new SQLite file, or a new PostgreSQL database
    dropped when the block ends. Its URL, ``sqlite:///PATH`` or ``postgresql://…/NAME``."""
    if backend == "sqlite":
        yield f"sqlite:///{bench.workdir / f'peers-{slug}.sqlite3'}"
        return
    with postgres_database(bench.config.pg_admin_url, f"peers_{slug}") as url:
        yield url


DRF_DIR = PEERS_DIR / "drf"
FASTAPI_DIR = PEERS_DIR / "fastapi_sqlmodel"


def _run(
    bin_dir: Path, app_dir: Path, args: list[str], env: dict[str, str], output: IO[bytes]
) -> str:
    """Run a script of a peer (in its directory and environment); return its standard output."""
    completed = subprocess.run(
        [str(bin_dir / "python"), *args],
        env={**os.environ, **env},
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=output,
        check=True,
    )
    return completed.stdout.decode()


def _sqlalchemy_url(database_url: str) -> str:
    """SQLAlchemy's URL for a database: psycopg 3 is named in it."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


def seed_peer(bench: Bench, bin_dir: Path, peer: str, database_url: str) -> list[str]:
    """Create ``BENCH_SEED`` appointments in a peer's database, in one transaction through its
    ORM (its tables made first); return their ids."""
    count, body = str(bench.config.seed_count), APPOINTMENT.create_body.decode()
    with (bench.workdir / f"seed-{SLUGS[peer]}.log").open("ab") as output:
        if peer == DRF:
            env = {"PEER_DATABASE_URL": database_url}
            _run(bin_dir, DRF_DIR, ["manage.py", "migrate", "--noinput"], env, output)
            printed = _run(
                bin_dir, DRF_DIR, ["manage.py", "seed_appointments", count, body], env, output
            )
        else:
            env = {"PEER_DATABASE_URL": _sqlalchemy_url(database_url)}
            printed = _run(bin_dir, FASTAPI_DIR, ["seed.py", count, body], env, output)
    return printed.split()


@contextmanager
def drf_server(bench: Bench, bin_dir: Path, database_url: str, label: str) -> Iterator[Server]:
    """The DRF peer: ``manage.py migrate``, the benchmark's key as a token, then gunicorn
    with its defaults (one sync worker, no access log)."""
    app_dir = DRF_DIR
    env = {"PEER_DATABASE_URL": database_url, "PYTHONPATH": str(app_dir)}
    port = free_port()
    with (bench.workdir / f"server-{label}.log").open("wb") as output:
        for args in (["migrate", "--noinput"], ["create_bench_token", bench.key]):
            _run(bin_dir, app_dir, ["manage.py", *args], env, output)
        command = [
            *(str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1"),
            # The control socket (gunicorn 24+) is an admin interface, not on the request
            # path; its default path is one per user, which two runs at once would share.
            *("--no-control-socket", "--chdir", str(app_dir), "peerproject.wsgi"),
        ]
        with serving(command, port, env=env, cpus=bench.config.server_cpus, log=output) as server:
            yield server


@contextmanager
def fastapi_server(bench: Bench, bin_dir: Path, database_url: str, label: str) -> Iterator[Server]:
    """The FastAPI + SQLModel peer on uvicorn: one process, no access log, uvicorn's default
    loop and HTTP parser (uvloop and httptools, which uvicorn[standard] installs)."""
    app_dir = FASTAPI_DIR
    env = {"PEER_DATABASE_URL": _sqlalchemy_url(database_url), "PEER_KEY": bench.key}
    port = free_port()
    command = [
        *(str(bin_dir / "uvicorn"), "main:app", "--app-dir", str(app_dir)),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log"),
    ]
    with (
        (bench.workdir / f"server-{label}.log").open("wb") as output,
        serving(command, port, env=env, cpus=bench.config.server_cpus, log=output) as server,
    ):
        yield server


# -- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeersRow:
    """One operation on one backend: each server's runs, each paired with a ceiling run."""

    backend: str
    operation: str
    summaries: dict[str, Summary]  # by server, in SERVERS order

    @property
    def best_peer(self) -> str:
        """The peer with the higher median req/s."""
        return max(PEERS, key=lambda peer: self.summaries[peer].rps)

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios: Overplane's req/s over the best peer's."""
        ours, theirs = self.summaries[OVERPLANE].runs, self.summaries[self.best_peer].runs
        return statistics.median(a.rps / b.rps for a, b in zip(ours, theirs, strict=True))

    @property
    def valid(self) -> bool:
        """Whether Overplane's and the best peer's runs had no failed request."""
        return self.summaries[OVERPLANE].failed == 0 and self.summaries[self.best_peer].failed == 0


@dataclass(frozen=True, slots=True)
class PeersResult:
    """What the phase found, and on what versions of the peers."""

    rows: list[PeersRow]
    versions: dict[str, str]


def workload(operation: str, ids: Path, body: Path, patch: Path) -> Workload:
    """The wrk load of ``operation`` on appointments, as the main phase sends it."""
    path = APPOINTMENT.path
    if operation == "list":
        return Workload("list", path)
    if operation == "create":
        return Workload("create", path, body=body)
    if operation == "update":
        return Workload("update", path, ids=ids, patch=patch)
    return Workload("retrieve", path, ids=ids)


def measure_backend(bench: Bench, bin_dir: Path, backend: str) -> list[PeersRow]:
    """The three servers on one backend: seed each, then every operation in rounds."""
    name = BACKEND_NAMES[backend]
    config = bench.config
    workdir = bench.workdir
    rows: list[PeersRow] = []
    with ExitStack() as stack:
        urls = {s: stack.enter_context(database(bench, backend, SLUGS[s])) for s in SERVERS}
        seeded: dict[str, list[str]] = {}
        for peer in PEERS:
            started = time.monotonic()
            seeded[peer] = seed_peer(bench, bin_dir, peer, urls[peer])
            log(
                f"peers      {name:10} {peer:16} seeded {len(seeded[peer]):,} appointments "
                f"through its ORM in {time.monotonic() - started:.1f} s"
            )
        servers = {
            OVERPLANE: stack.enter_context(bench.overplane(f"peers-{backend}", urls[OVERPLANE])),
            DRF: stack.enter_context(drf_server(bench, bin_dir, urls[DRF], f"drf-{backend}")),
            FASTAPI: stack.enter_context(
                fastapi_server(bench, bin_dir, urls[FASTAPI], f"fastapi-{backend}")
            ),
        }
        started = time.monotonic()
        seeded[OVERPLANE] = seed.create_objects(
            servers[OVERPLANE].port,
            bench.key,
            APPOINTMENT.path,
            APPOINTMENT.create_body,
            config.seed_count,
        )
        log(
            f"peers      {name:10} {OVERPLANE:16} seeded {len(seeded[OVERPLANE]):,} appointments "
            f"through its API in {time.monotonic() - started:.1f} s"
        )
        ids = {
            s: write_lines(
                workdir / f"peers-{backend}-{SLUGS[s]}-ids",
                random.sample(seeded[s], len(seeded[s])),
            )
            for s in SERVERS
        }
        body = workdir / f"peers-{backend}-body.json"
        body.write_bytes(APPOINTMENT.create_body)
        patch = workdir / f"peers-{backend}-patch.json"
        patch.write_bytes(APPOINTMENT.update_body)
        reps = config.repetitions
        for operation in OPERATIONS:
            arms: list[Arm] = []
            for server_name in SERVERS:
                load = workload(operation, ids[server_name], body, patch)
                arms += [
                    bench.ceiling_arm(config.ceiling_seconds),
                    Arm(servers[server_name], [load] * reps, config.duration, load),
                ]
            summaries = bench.interleave(arms)
            paired = {
                server_name: Summary(summaries[2 * i + 1].runs, ceiling=summaries[2 * i].runs)
                for i, server_name in enumerate(SERVERS)
            }
            row = PeersRow(name, operation, paired)
            rows.append(row)
            log(
                f"peers      {name:10} {operation:8} "
                + "  ".join(
                    f"{s} {paired[s].rps:,.0f} req/s"
                    + (f" (FAILED {paired[s].failed})" if paired[s].failed else "")
                    for s in SERVERS
                )
                + f"  Overplane / {row.best_peer} {row.ratio:.1f}×"
            )
    return rows


def run_phase(bench: Bench) -> PeersResult:
    """The phase on every configured backend (PostgreSQL skipped if unreachable), with the
    ceiling app up for the pairing."""
    bin_dir = ensure_venv()
    versions = peer_versions(bin_dir)
    rows: list[PeersRow] = []
    with bench.ceiling_server():
        for backend in bench.config.backends:
            if backend == "postgresql":
                admin_url = bench.config.pg_admin_url
                try:
                    versions["PostgreSQL"] = asyncio.run(_pg_execute(admin_url, "SELECT 1"))
                except (OSError, asyncpg.PostgresError) as exc:
                    log(f"peers: PostgreSQL skipped: cannot connect to {admin_url} ({exc})")
                    continue
            rows += measure_backend(bench, bin_dir, backend)
    return PeersResult(rows, versions)


# -- the report ----------------------------------------------------------------------------


def _rps(summary: Summary) -> str:
    text = f"{summary.rps:,.0f}"
    return f"{text} (**invalid: {summary.failed} failed**)" if summary.failed else text


def _latency(summary: Summary) -> str:
    return f"{summary.p50_ms:.1f} / {summary.p99_ms:.1f}"


def table(rows: list[PeersRow]) -> list[str]:
    """The markdown table of the phase."""
    lines = [
        f"| backend | operation | {OVERPLANE} req/s | {DRF} req/s | {FASTAPI} req/s "
        "| Overplane / best peer | target | "
        + " | ".join(f"{s} p50 / p99 ms" for s in SERVERS)
        + " | ratio to ceiling "
        + " / ".join(SERVERS)
        + " |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        s = row.summaries
        ratio = f"{row.ratio:.1f}× ({row.best_peer})" if row.valid else "invalid"
        target = "–"
        if row.operation == "create":
            met = row.valid and row.ratio >= CREATE_TARGET
            target = f"≥ {CREATE_TARGET:.0f}×: {'met' if met else '**not met**'}"
        lines.append(
            f"| {row.backend} | {row.operation} | {_rps(s[OVERPLANE])} | {_rps(s[DRF])} "
            f"| {_rps(s[FASTAPI])} | {ratio} | {target} | "
            + " | ".join(_latency(s[server]) for server in SERVERS)
            + " | "
            + " / ".join(f"{s[server].ratio:.3f}" for server in SERVERS)
            + " |"
        )
    return lines


def render(bench: Bench, result: PeersResult, wall_seconds: float, load: str) -> str:
    """The generated ``peers`` section: when, on what, with which settings, and the table."""
    config = bench.config
    results = bench.results
    return "\n".join(
        [
            *phase_heading(bench, "peers"),
            "Versions: "
            + ", ".join(
                f"{k} {v}"
                for k, v in {
                    "python": results.versions["python"],
                    "overplane": results.versions["overplane"],
                    **result.versions,
                }.items()
            )
            + ".",
            f"Settings: appointments, {config.repetitions} rounds of {config.duration} s runs "
            f"after {config.warmup} s warm-ups, each run right after a "
            f"{config.ceiling_seconds} s ceiling run, {config.connections} connections, "
            f"{config.seed_count:,} seeded appointments per server, server CPUs "
            f"{config.server_cpus}, wrk CPUs {config.client_cpus}, wall time "
            f"{wall_seconds / 60:.1f} min, load average (1 min) at start and end {load}; "
            f"DRF with CONN_MAX_AGE {drf_conn_max_age()}"
            f"{' (Django default: a connection per request)' if drf_conn_max_age() == '0' else ''}"
            ", the peers' SQLite in its default rollback journal.",
            "",
            *table(result.rows),
        ]
    )


def measure_and_render(bench: Bench) -> str:
    """Run the phase as part of ``make bench`` and return its section."""
    started, load_before = time.monotonic(), load_average()
    result = run_phase(bench)
    return render(bench, result, time.monotonic() - started, f"{load_before} and {load_average()}")


def main() -> int:
    """Run the phase alone and replace the ``peers`` section of ``docs/performance.md``."""
    return run_phase_alone(SECTION, run_phase, render)


if __name__ == "__main__":
    sys.exit(main())
