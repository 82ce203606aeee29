"""The Overplane throughput benchmark: ``make bench`` (``python -m bench.run``).

Method
------
* **Load**: wrk (one thread, 64 keep-alive connections) with ``bench/scenario.lua``, which
  builds every request once and then only picks one. wrk and this script run on one core
  (``BENCH_CLIENT_CPUS``, default 1) and the server on another (``BENCH_SERVER_CPUS``,
  default 0), both pinned with ``taskset``.
* **Ceiling**: ``bench/ceiling.py``, a raw ASGI app that checks the same Authorization header
  and returns a canned appointment for ``GET /api/crm/appointment/{id}``, served by uvicorn
  with the settings ``overplane serve`` uses (uvloop, httptools, one worker, no access log).
  It runs for the whole benchmark, idle while another server is measured.
* **Servers**: ``overplane serve`` with one worker, on SQLite (a fresh file) and then on
  PostgreSQL (a database created for the run and dropped after), access log off. Nothing is
  run on the database that a user would not run: no ``VACUUM ANALYZE`` after seeding (the
  by-id statements name the whole primary key, so their plans need no statistics; see
  ``tests/test_sharding.py``).
* **Data**: 10,000 objects of each resource are created through the API first (concurrent
  raw HTTP/1.1), so a list pages through an account of 10,000 objects. Retrieve, update and the
  mix walk through those ids; the mix is 7 retrieves, 1 list, 1 create and 1 update in every
  10 requests. Delete needs a distinct existing id per request: the ids the create benchmark
  made are split between the delete runs, each run walks its share once and stops when it is
  used up (timing itself then), and every 404 is counted. A run with any failed request is
  reported as invalid, never as a figure.
* **Repetitions**: each measurement is a warm-up run and then ``BENCH_REPETITIONS`` runs of
  ``BENCH_DURATION`` seconds, each right after a ``BENCH_CEILING_SECONDS`` run of the ceiling
  on the same core. The table gives the median with the lowest and highest run, and the
  median of the per-repetition ratios to the ceiling: a busy moment of the shared machine
  lowers both halves of a pair, so the ratio is what stays comparable between runs.
* **Also**: ``--workers 2`` against 1 (retrieve, SQLite), the access log on against off,
  writes with events on against off (``bench/events.py``, also runnable alone),
  resident memory per worker at idle and over a sustained mixed load, and py-spy profiles of
  retrieve, list, update and create on both backends (see ``bench/profiling.py``).

The servers run a copy of ``src/`` taken at the start, so a run measures one version of the
code. The results replace the generated section of ``docs/performance.md`` and are printed.

Knobs (environment): ``BENCH_QUICK=1`` (a smoke run of about three minutes),
``BENCH_DURATION`` (s, default 10), ``BENCH_REPETITIONS`` (3), ``BENCH_WARMUP`` (s, 1),
``BENCH_CEILING_SECONDS`` (s, 2),
``BENCH_CONNECTIONS`` (64), ``BENCH_SEED`` (objects per resource, 10000),
``BENCH_SOAK_SECONDS`` (60; the issue asks for 300), ``BENCH_PROFILE`` (1 or 0),
``BENCH_PROFILE_SECONDS`` (5), ``BENCH_EXTRAS`` (1 or 0: workers and access-log runs),
``BENCH_EVENTS`` (1 or 0: the cost of events on writes, ``bench/events.py``),
``BENCH_LIMITS`` (1 or 0: the cost of the rate limiter on retrieve, ``bench/limits.py``),
``BENCH_PEERS`` (1 or 0: DRF and FastAPI + SQLModel against Overplane, ``bench/peers/``),
``BENCH_HTTP_SERVER`` (``uvicorn`` or ``granian``: ``overplane serve --http-server`` and the
ceiling both run on it),
``BENCH_BACKENDS`` (``sqlite,postgresql``), ``BENCH_PG_URL`` (an administrative connection,
default ``postgresql://postgres@127.0.0.1:5432/postgres``), ``BENCH_SERVER_CPUS``,
``BENCH_CLIENT_CPUS``, ``BENCH_DOC`` (default ``docs/performance.md``) and ``BENCH_KEEP=1``
(keep the working directory with server logs and raw profiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import random
import secrets
import shutil
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import loadgen, profiling, report, seed
from bench.loadgen import BackgroundLoad, RunResult, Workload
from bench.report import (
    AccessLogRow,
    Measurement,
    MemoryRow,
    Results,
    Summary,
    WorkersRow,
)
from bench.servers import (
    HTTP_SERVER,
    ROOT,
    Server,
    ceiling_command,
    free_port,
    overplane_command,
    serving,
)

R = TypeVar("R")

DOC_TEMPLATE = """# Performance

How fast one Overplane server process is, measured against the fastest an ASGI app can be on
the same HTTP server. Rerun it with `make bench` (method and knobs: `bench/run.py`).
"""


@dataclass(frozen=True, slots=True)
class BenchResource:
    """A resource as the benchmark drives it."""

    name: str
    path: str
    create_body: bytes
    update_body: bytes


RESOURCES = (
    BenchResource(
        "appointment",
        "/api/crm/appointment",
        b'{"customer_name":"a","scheduled_time":"b","status":"draft","customer_email":"c"}',
        b'{"status":"confirmed"}',
    ),
    BenchResource(
        "party-link",
        "/api/accounts/party-link",
        b'{"primary_role":"a"}',
        b'{"secondary_role":"b"}',
    ),
)
APPOINTMENT = RESOURCES[0]
BACKEND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
#: Fewer ids than this per delete run would make the run too short to mean much.
MIN_DELETE_IDS_PER_RUN = 1000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Config:
    """The knobs, read from the environment."""

    duration: int
    repetitions: int
    warmup: int
    connections: int
    seed_count: int
    soak_seconds: int
    ceiling_seconds: int
    profile: bool
    profile_seconds: int
    extras: bool
    events: bool
    limits: bool
    backends: tuple[str, ...]
    pg_admin_url: str
    server_cpus: str
    client_cpus: str
    doc: Path
    keep: bool

    @classmethod
    def from_environ(cls) -> Config:
        quick = _env_flag("BENCH_QUICK", False)
        backends = tuple(
            b.strip()
            for b in os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(",")
            if b.strip()
        )
        unknown = [b for b in backends if b not in BACKEND_NAMES]
        if unknown:
            raise SystemExit(f"BENCH_BACKENDS: unknown backend(s) {unknown}")
        return cls(
            duration=_env_int("BENCH_DURATION", 2 if quick else 10),
            repetitions=_env_int("BENCH_REPETITIONS", 1 if quick else 3),
            warmup=_env_int("BENCH_WARMUP", 1),
            connections=_env_int("BENCH_CONNECTIONS", 64),
            seed_count=_env_int("BENCH_SEED", 10_000),
            soak_seconds=_env_int("BENCH_SOAK_SECONDS", 10 if quick else 60),
            ceiling_seconds=_env_int("BENCH_CEILING_SECONDS", 1 if quick else 2),
            profile=_env_flag("BENCH_PROFILE", not quick),
            profile_seconds=_env_int("BENCH_PROFILE_SECONDS", 5),
            extras=_env_flag("BENCH_EXTRAS", True),
            events=_env_flag("BENCH_EVENTS", True),
            limits=_env_flag("BENCH_LIMITS", True),
            backends=backends,
            pg_admin_url=os.environ.get(
                "BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
            ),
            server_cpus=os.environ.get("BENCH_SERVER_CPUS", "0"),
            client_cpus=os.environ.get("BENCH_CLIENT_CPUS", "1"),
            doc=ROOT / os.environ.get("BENCH_DOC", "docs/performance.md"),
            keep=_env_flag("BENCH_KEEP", False),
        )


def log(message: str) -> None:
    """Progress on standard error (the results go to standard output)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_tools(config: Config) -> None:
    """Install wrk (Debian package) and py-spy (into the venv) if they are missing."""
    if shutil.which("wrk") is None:
        log("installing wrk: apt-get update && apt-get install -y wrk")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    if config.profile and not profiling.PY_SPY.exists():
        log("installing py-spy into the virtual environment")
        subprocess.run([sys.executable, "-m", "pip", "install", "py-spy"], check=True)


def new_key() -> str:
    """A fresh test key, registered by the server at start (OVERPLANE_BOOTSTRAP_KEY)."""
    alphabet = string.ascii_letters + string.digits
    return "sk_test_" + "".join(secrets.choice(alphabet) for _ in range(32))


def machine() -> dict[str, str]:
    """nproc, CPU model and memory of this machine."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "CPU": model,
        "memory": memory,
        "kernel": platform.release(),
    }


def source_revision() -> str:
    """The commit benchmarked, flagged when ``src/`` has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def versions() -> dict[str, str]:
    """The versions of everything on the request path."""
    found = {"python": platform.python_version()}
    for package in (HTTP_SERVER, "uvloop", "httptools", "starlette", "msgspec", "asyncpg"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    found["SQLite"] = sqlite3.sqlite_version
    found["wrk"] = loadgen.wrk_version().removeprefix("wrk ")
    found["overplane"] = source_revision()
    return found


async def _pg_execute(url: str, statement: str) -> str:
    """Run ``statement`` on a connection to ``url``; return the server's version."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


@contextmanager
def postgres_database(admin_url: str, label: str = "") -> Iterator[str]:
    """The URL of a uniquely named database for this run (``label`` in its name, to tell
    several apart), dropped when the block ends."""
    # Unique even for two databases made in the same second (bench.compare makes a pair).
    stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}_{os.getpid()}_{secrets.token_hex(3)}"
    name = f"overplane_bench_{label}{'_' if label else ''}{stamp}"
    asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
    log(f"created the PostgreSQL database {name}")
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write one item per line and return ``path``."""
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@dataclass(frozen=True, slots=True)
class Arm:
    """One of the loads that :meth:`Bench.interleave` measures in turn."""

    server: Server
    runs: list[Workload]  # one per repetition
    seconds: int
    warm_up: Workload | None = None
    wrk_cpus: str | None = None


class Bench:
    """One run of the benchmark: servers, loads and the results they give."""

    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.key = new_key()
        # Every server of the run imports this copy (PYTHONPATH comes before the editable
        # install), so one run measures one version of the code even if src/ is being edited.
        self.source = workdir / "src"
        shutil.copytree(
            ROOT / "src", self.source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        self.results = Results(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=machine(),
            versions=versions(),
            settings={
                "HTTP server": HTTP_SERVER,
                "connections": str(config.connections),
                "runs": f"{config.repetitions} × {config.duration} s after a "
                f"{config.warmup} s warm-up, each paired with a {config.ceiling_seconds} s "
                "ceiling run",
                "seeded objects": f"{config.seed_count:,} per resource",
                "server CPUs": config.server_cpus,
                "wrk CPUs": config.client_cpus,
            },
        )
        self.ceiling_runs: list[RunResult] = []
        self._ceiling: tuple[Server, Workload] | None = None  # while the ceiling app runs

    # -- servers -----------------------------------------------------------------------------

    @contextmanager
    def overplane(
        self,
        label: str,
        database_url: str,
        *,
        workers: int = 1,
        access_log: bool = False,
        events: bool = True,
        cpus: str | None = None,
        extra_env: dict[str, str] | None = None,
        source: Path | None = None,
    ) -> Iterator[Server]:
        """``overplane serve`` on ``database_url`` (``events``: OVERPLANE_EVENTS; further
        variables in ``extra_env``; ``source``: another copy of ``src/`` to import, as
        ``bench.compare`` runs); its output goes to a file."""
        port = free_port()
        env = {
            "OVERPLANE_DATABASE_URL": database_url,
            "OVERPLANE_BOOTSTRAP_KEY": self.key,
            "OVERPLANE_ACCESS_LOG": "true" if access_log else "false",
            "OVERPLANE_EVENTS": "true" if events else "false",
            "PYTHONPATH": str(source or self.source),
            **(extra_env or {}),
        }
        with (
            (self.workdir / f"server-{label}.log").open("wb") as output,
            serving(
                overplane_command(port, workers),
                port,
                env=env,
                cpus=cpus or self.config.server_cpus,
                log=output,
            ) as server,
        ):
            yield server

    @contextmanager
    def ceiling_server(self) -> Iterator[Server]:
        """The ceiling app, up for the whole run (idle while another server is measured)."""
        port = free_port()
        ids = [f"appointment_{secrets.token_hex(13)[:25]}" for _ in range(1000)]
        workload = Workload(
            "retrieve", APPOINTMENT.path, ids=write_lines(self.workdir / "ceiling-ids", ids)
        )
        with (
            (self.workdir / "server-ceiling.log").open("wb") as output,
            serving(
                ceiling_command(port),
                port,
                env={"BENCH_CEILING_KEY": self.key},
                cpus=self.config.server_cpus,
                log=output,
            ) as server,
        ):
            self._ceiling = (server, workload)
            try:
                yield server
            finally:
                self._ceiling = None

    # -- measuring ---------------------------------------------------------------------------

    def run_once(
        self, server: Server, workload: Workload, seconds: int, cpus: str | None
    ) -> RunResult:
        """One wrk run of ``workload`` against ``server``."""
        return loadgen.run_wrk(
            server.base_url,
            self.key,
            workload,
            seconds=seconds,
            connections=self.config.connections,
            cpus=cpus,
        )

    def interleave(self, arms: list[Arm]) -> list[Summary]:
        """Warm each arm up, then run repetition 1 of every arm, then repetition 2, and so on.

        Taking turns spreads the machine's slow moments over all arms instead of letting them
        fall on one, which is what makes a ratio between arms trustworthy on a shared machine.
        """
        for arm in arms:
            if arm.warm_up is not None:
                self.run_once(arm.server, arm.warm_up, self.config.warmup, arm.wrk_cpus)
        runs: list[list[RunResult]] = [[] for _ in arms]
        for repetition in range(self.config.repetitions):
            for index, arm in enumerate(arms):
                workload = arm.runs[repetition]
                runs[index].append(self.run_once(arm.server, workload, arm.seconds, arm.wrk_cpus))
        return [Summary(tuple(r)) for r in runs]

    def ceiling_arm(self, seconds: int) -> Arm:
        """Repetitions of the ceiling (which must be running) of ``seconds`` each."""
        if self._ceiling is None:
            raise RuntimeError("the ceiling app is not running")
        server, workload = self._ceiling
        return Arm(server, [workload] * self.config.repetitions, seconds)

    def measure(self, server: Server, runs: list[Workload], warm_up: Workload) -> Summary:
        """A warm-up, then the repetitions, each right after a short run of the ceiling."""
        ceiling, measured = self.interleave(
            [
                self.ceiling_arm(self.config.ceiling_seconds),
                Arm(server, runs, self.config.duration, warm_up),
            ]
        )
        self.ceiling_runs += ceiling.runs
        return Summary(measured.runs, ceiling=ceiling.runs)

    def measure_ceiling(self) -> None:
        """A full-length measurement of the ceiling alone, at the start of the run."""
        arm = self.ceiling_arm(self.config.duration)
        (summary,) = self.interleave([Arm(arm.server, arm.runs, arm.seconds, arm.runs[0])])
        self.ceiling_runs += summary.runs
        log(
            f"ceiling    appointment  retrieve {summary.rps:9,.0f} req/s "
            f"[{summary.rps_min:,.0f}–{summary.rps_max:,.0f}]  p50 {summary.p50_ms:6.2f} ms  "
            f"p99 {summary.p99_ms:6.2f} ms"
        )

    def record(self, backend: str, resource: str, operation: str, summary: Summary) -> None:
        """Keep a measurement for the report and show it."""
        self.results.measurements.append(Measurement(backend, resource, operation, summary))
        flag = f"  FAILED {summary.failed} (404: {summary.not_found})" if summary.failed else ""
        log(
            f"{backend:10} {resource:12} {operation:8} {summary.rps:9,.0f} req/s "
            f"[{summary.rps_min:,.0f}–{summary.rps_max:,.0f}]  ratio {summary.ratio:.2f}  "
            f"p50 {summary.p50_ms:6.2f} ms  p99 {summary.p99_ms:6.2f} ms{flag}"
        )

    def seed(self, server: Server, resource: BenchResource) -> list[str]:
        """Create the seed objects of ``resource`` through the API; return their ids."""
        started = time.monotonic()
        ids = seed.create_objects(
            server.port, self.key, resource.path, resource.create_body, self.config.seed_count
        )
        elapsed = time.monotonic() - started
        log(f"seeded {len(ids):,} {resource.name} objects in {elapsed:.1f} s")
        return ids

    def _file(self, name: str, content: bytes) -> Path:
        """Write ``content`` to a file of the working directory and return its path."""
        path = self.workdir / name
        path.write_bytes(content)
        return path

    def resource_operations(
        self, server: Server, backend: str, resource: BenchResource, seeded: list[str]
    ) -> None:
        """Retrieve, list, update, create, delete and the mix, in that order.

        List runs before create so that it pages through exactly the seeded objects; delete
        runs after create because it deletes what create made.
        """
        stem = f"{backend}-{resource.name}"
        ids = write_lines(self.workdir / f"{stem}-ids", random.sample(seeded, len(seeded)))
        body = self._file(f"{stem}-body.json", resource.create_body)
        patch = self._file(f"{stem}-patch.json", resource.update_body)
        created = self.workdir / f"{stem}-created"
        path = resource.path
        reps = self.config.repetitions

        def run(operation: str, workload: Workload) -> None:
            summary = self.measure(server, [workload] * reps, workload)
            self.record(backend, resource.name, operation, summary)

        run("retrieve", Workload("retrieve", path, ids=ids))
        run("list", Workload("list", path))
        run("update", Workload("update", path, ids=ids, patch=patch))
        run("create", Workload("create", path, body=body, created=created))
        warm_up, *runs = self.delete_workloads(server, resource, created)
        self.record(backend, resource.name, "delete", self.measure(server, runs, warm_up))
        run("mix", Workload("mix", path, ids=ids, body=body, patch=patch))

    def delete_workloads(
        self, server: Server, resource: BenchResource, created: Path
    ) -> list[Workload]:
        """One id list for the warm-up and one per repetition, in proportion to their lengths."""
        config = self.config
        ids = created.read_text().split()
        wanted = MIN_DELETE_IDS_PER_RUN * (config.repetitions + 1)
        if len(ids) < wanted:
            ids += seed.create_objects(
                server.port, self.key, resource.path, resource.create_body, wanted - len(ids)
            )
        total_seconds = config.warmup + config.repetitions * config.duration
        warm_up_share = max(MIN_DELETE_IDS_PER_RUN, len(ids) * config.warmup // total_seconds)
        rest = ids[warm_up_share:]
        per_run = len(rest) // config.repetitions
        chunks = [ids[:warm_up_share]] + [
            rest[i * per_run : (i + 1) * per_run] for i in range(config.repetitions)
        ]
        stem = created.name.removesuffix("-created")
        return [
            Workload(
                "delete",
                resource.path,
                ids=write_lines(self.workdir / f"{stem}-delete-{index}", chunk),
            )
            for index, chunk in enumerate(chunks)
        ]

    # -- memory and profiles -----------------------------------------------------------------

    def soak(self, server: Server, label: str, idle: list[float], seeded: list[str]) -> None:
        """A sustained mixed load, sampling each worker's resident memory as it runs."""
        seconds = self.config.soak_seconds
        stem = f"soak-{label.split(',')[0]}"
        workload = Workload(
            "mix",
            APPOINTMENT.path,
            ids=write_lines(self.workdir / f"{stem}-ids", seeded),
            body=self._file(f"{stem}-body.json", APPOINTMENT.create_body),
            patch=self._file(f"{stem}-patch.json", APPOINTMENT.update_body),
        )
        before = server.rss_mib()
        command = loadgen.wrk_command(
            server.base_url,
            self.key,
            workload,
            seconds=seconds,
            connections=self.config.connections,
        )
        load = BackgroundLoad(command)
        samples: list[tuple[float, list[float]]] = []
        started = time.monotonic()
        while load.running():
            samples.append((time.monotonic() - started, server.rss_mib()))
            time.sleep(max(1.0, seconds / 30))
        result = load.result()
        self.results.sustained.append(
            Measurement(label.split(",")[0], APPOINTMENT.name, "mix", Summary((result,)))
        )
        after = server.rss_mib()
        midpoint = min(samples, key=lambda s: abs(s[0] - seconds / 2))[1] if samples else before
        peaks = [max(s[1][i] for s in samples) for i in range(len(after))] if samples else after
        self.results.memory.append(
            MemoryRow(
                label=label,
                idle_mib=idle,
                before_mib=before,
                after_mib=after,
                peak_mib=peaks,
                second_half_growth_mib=[a - m for a, m in zip(after, midpoint, strict=False)],
                soak_seconds=seconds,
                soak=Summary((result,)),
            )
        )
        log(f"memory     {label}: idle {idle}, before {before}, after {after} MiB")

    def sustained_creates(self, server: Server, backend: str) -> None:
        """Creates for ``BENCH_SOAK_SECONDS`` without a pause: the WAL fills and is
        checkpointed, statistics are refreshed, the collector runs; the tail must stay
        within four times the median through all of it."""
        body = self._file(f"sustained-{backend}-body.json", APPOINTMENT.create_body)
        workload = Workload("create", APPOINTMENT.path, body=body)
        result = self.run_once(server, workload, self.config.soak_seconds, None)
        summary = Summary((result,))
        self.results.sustained.append(Measurement(backend, APPOINTMENT.name, "create", summary))
        log(
            f"sustained  {backend} create {self.config.soak_seconds} s: {result.rps:,.0f} req/s "
            f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms"
        )

    def profile(self, server: Server, backend: str, seeded: list[str]) -> None:
        """py-spy profiles of retrieve, list, update and create on appointments, under full
        load."""
        config = self.config
        ids = write_lines(self.workdir / f"profile-{backend}-ids", seeded)
        body = self._file(f"profile-{backend}-body.json", APPOINTMENT.create_body)
        patch = self._file(f"profile-{backend}-patch.json", APPOINTMENT.update_body)
        for operation in ("retrieve", "list", "update", "create"):
            workload = Workload(operation, APPOINTMENT.path, ids=ids, body=body, patch=patch)
            command = loadgen.wrk_command(
                server.base_url,
                self.key,
                workload,
                seconds=config.warmup + config.profile_seconds + 1,
                connections=config.connections,
            )
            load = BackgroundLoad(command)
            time.sleep(config.warmup)
            output = self.workdir / f"profile-{backend}-{operation}.txt"
            profile = profiling.record(server.process.pid, config.profile_seconds, output)
            load.result()
            self.results.profiles[f"{backend} {operation}"] = profile
            top = sorted(profile.functions.items(), key=lambda kv: -kv[1])[:8]
            log(
                f"profile    {backend} {operation}: {profile.samples} samples, busy "
                f"{profile.busy:.0%}; innermost: "
                + "; ".join(f"{name} {n / profile.samples:.0%}" for name, n in top)
            )

    # -- phases ------------------------------------------------------------------------------

    def backend(self, backend: str, database_url: str) -> None:
        """Every operation on both resources, then profiles and the soak, on one backend."""
        name = BACKEND_NAMES[backend]
        with self.overplane(backend, database_url) as server:
            idle = server.rss_mib()
            seeded = {r.name: self.seed(server, r) for r in RESOURCES}
            for resource in RESOURCES:
                self.resource_operations(server, name, resource, seeded[resource.name])
            if self.config.profile:
                self.profile(server, name, seeded[APPOINTMENT.name])
            if self.config.soak_seconds > 0:
                self.soak(server, f"{name}, 1 worker", idle, seeded[APPOINTMENT.name])
                self.sustained_creates(server, name)

    def workers(self, database_url: str, ids: Path) -> None:
        """One worker against two (retrieve, SQLite), pinned to one core and sharing both."""
        workload = Workload("retrieve", APPOINTMENT.path, ids=ids)
        all_cpus = f"0-{(os.cpu_count() or 1) - 1}"
        placements = [
            ("pinned", self.config.server_cpus, self.config.client_cpus),
            ("shared", all_cpus, all_cpus),
        ]
        reps = self.config.repetitions
        for placement, server_cpus, wrk_cpus in placements:
            with (
                self.overplane(f"1-{placement}", database_url, cpus=server_cpus) as one,
                self.overplane(f"2-{placement}", database_url, workers=2, cpus=server_cpus) as two,
            ):
                if placement == "pinned":
                    label = "SQLite, 2 workers (idle only)"
                    self.results.memory.append(
                        MemoryRow(label, two.rss_mib(), [], [], [], [], 0, None)
                    )
                arms = [
                    Arm(s, [workload] * reps, self.config.duration, workload, wrk_cpus)
                    for s in (one, two)
                ]
                for workers, summary in zip((1, 2), self.interleave(arms), strict=True):
                    self.results.workers.append(WorkersRow(workers, placement, summary))
                    log(f"workers    {workers} {placement}: {summary.rps:,.0f} req/s")

    def access_log(self, database_url: str, ids: Path) -> None:
        """The access log on against off (retrieve, SQLite), standard error to a file."""
        workload = Workload("retrieve", APPOINTMENT.path, ids=ids)
        reps = self.config.repetitions
        with (
            self.overplane("access-log-off", database_url) as off,
            self.overplane("access-log-on", database_url, access_log=True) as on,
        ):
            arms = [Arm(s, [workload] * reps, self.config.duration, workload) for s in (off, on)]
            summaries = self.interleave(arms)
        log_file = self.workdir / "server-access-log-on.log"
        lines = sum(1 for line in log_file.open("rb") if line.startswith(b'{"time"'))
        for enabled, summary in zip((False, True), summaries, strict=True):
            self.results.access_log.append(AccessLogRow(enabled, summary, lines))
            log(f"access log {'on ' if enabled else 'off'}: {summary.rps:,.0f} req/s")

    def run(self) -> Results:
        """All phases, in order."""
        with self.ceiling_server():
            self.measure_ceiling()
            for backend in self.config.backends:
                if backend == "sqlite":
                    url = f"sqlite:///{self.workdir / 'overplane.sqlite3'}"
                    self.backend(backend, url)
                    if self.config.extras:
                        ids = self.workdir / "SQLite-appointment-ids"
                        self.workers(url, ids)
                        self.access_log(url, ids)
                else:
                    self.run_postgres()
        self.results.ceiling = Summary(tuple(self.ceiling_runs))
        return self.results

    def run_postgres(self) -> None:
        """The PostgreSQL phase, in a database of its own; skipped (with a note) if unreachable."""
        admin_url = self.config.pg_admin_url
        try:
            self.results.versions["PostgreSQL"] = asyncio.run(_pg_execute(admin_url, "SELECT 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            note = f"PostgreSQL skipped: cannot connect to {admin_url} ({exc})"
            self.results.notes.append(note)
            log(note)
            return
        with postgres_database(admin_url) as url:
            self.backend("postgresql", url)


def load_average() -> str:
    """The 1-minute load average: how busy the machine was with other work too."""
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_set(cpus: str) -> set[int]:
    """The CPUs that ``cpus`` (taskset syntax: ``0``, ``0,1``, ``0-3``) names."""
    chosen: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        chosen.update(range(int(low), int(high or low) + 1))
    return chosen


def pin_to(cpus: str) -> None:
    """Pin this process (and so wrk and the seeding client) to ``cpus`` (taskset syntax)."""
    os.sched_setaffinity(0, cpu_set(cpus))


def pin_process(pid: int, cpus: str) -> None:
    """Move every thread of process ``pid`` to ``cpus`` (as ``taskset -a -p``)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), cpu_set(cpus))


def phase_heading(bench: Bench, phase: str) -> list[str]:
    """The first lines of a phase's generated section: its title with the run's date and
    code, and the machine it ran on."""
    results = bench.results
    return [
        f"### Latest {phase} run ({results.date}, code {results.versions['overplane']})",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in results.machine.items()) + ".",
    ]


def run_phase_alone(
    section: str,
    measure: Callable[[Bench], R],
    render: Callable[[Bench, R, float, str], str],
) -> int:
    """Run one phase on its own (``python -m bench.events``, ``bench.limits``): measure in a
    working directory of its own, render the section, print it and replace the ``section``
    of ``docs/performance.md`` (``BENCH_DOC``)."""
    config = Config.from_environ()
    ensure_tools(config)
    pin_to(config.client_cpus)
    workdir = Path(tempfile.mkdtemp(prefix=f"overplane-bench-{section}-"))
    started = time.monotonic()
    load_before = load_average()
    try:
        bench = Bench(config, workdir)
        rows = measure(bench)
    finally:
        if config.keep:
            log(f"kept the working directory {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load = f"{load_before} and {load_average()}"
    text = render(bench, rows, time.monotonic() - started, load)
    print(text)
    report.replace_section(config.doc, section, text)
    log(f"wrote the {section} section of {config.doc}")
    return 0


def main() -> int:
    """Run the benchmark, print the tables and update ``docs/performance.md``."""
    config = Config.from_environ()
    ensure_tools(config)
    pin_to(config.client_cpus)
    workdir = Path(tempfile.mkdtemp(prefix="overplane-bench-"))
    started = time.monotonic()
    load_before = load_average()
    events_section = limits_section = peers_section = ""
    try:
        bench = Bench(config, workdir)
        results = bench.run()
        if config.events:
            # Imported here: bench.events builds on this module.
            from bench import events

            phase_started, phase_load = time.monotonic(), load_average()
            rows = events.run_phase(bench)
            phase_load = f"{phase_load} and {load_average()}"
            elapsed = time.monotonic() - phase_started
            events_section = events.render(bench, rows, elapsed, phase_load)
        if config.limits:
            from bench import limits

            phase_started, phase_load = time.monotonic(), load_average()
            limit_rows = limits.run_phase(bench)
            phase_load = f"{phase_load} and {load_average()}"
            elapsed = time.monotonic() - phase_started
            limits_section = limits.render(bench, limit_rows, elapsed, phase_load)
        # bench.peers reads BENCH_PEERS itself and owns its section of the doc.
        from bench.peers import phase as peers

        if peers.enabled():
            peers_section = peers.measure_and_render(bench)
    finally:
        if config.keep:
            log(f"kept the working directory {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results.settings["wall time"] = f"{(time.monotonic() - started) / 60:.1f} min"
    results.settings["load average (1 min) at start and end"] = (
        f"{load_before} and {load_average()}"
    )
    section = report.render(results)
    print(section)
    report.update_doc(config.doc, section, DOC_TEMPLATE)
    if events_section:
        print(events_section)
        report.replace_section(config.doc, "events", events_section)
    if limits_section:
        print(limits_section)
        report.replace_section(config.doc, "limits", limits_section)
    if peers_section:
        print(peers_section)
        report.replace_section(config.doc, peers.SECTION, peers_section)
    log(f"wrote {config.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
