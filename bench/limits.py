"""Rate limits: the cost of the limiter on retrieve. ``python -m bench.limits`` alone;
``make bench`` runs it too, after the other phases (``BENCH_LIMITS=0`` leaves it out).

Every authenticated /api request takes a token from its key's bucket, in this process's memory
or, with ``OVERPLANE_REDIS_URL``, through one Lua script in Redis (one round trip). Retrieve is
the cheapest request, so the limiter's share of its time is the largest of any operation.

Method: three ``overplane serve`` processes on **one** SQLite database, all pinned to the
server core (two idle while the third is measured): limits off, limits in process, limits in
Redis (the machine's, ``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``, under a key
prefix of the run's own, deleted afterwards). The budgets of the two limited servers are far
above what wrk can send (10⁹ a second), so every request takes a token and none is refused (a
429 would count as a failure and void the run). After a warm-up of each, ``BENCH_REPETITIONS``
rounds of ``BENCH_DURATION`` s runs of each server, the order rotating from round to round; the
ratio is the median of the rounds' ratios (limited / off). Redis is on the same machine and its
CPU is not pinned: it competes with the server and wrk for the two cores, as it would not on a
host of its own. Beside req/s, each run's CPU time per request, of the server process and of
Redis (from /proc), is recorded, and the medians are reported: CPU time is far less disturbed
by a busy shared machine than the throughput of a pinned server is. Knobs are ``bench/run.py``'s; the result replaces the ``limits`` section of
``docs/performance.md``.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import sys
from dataclasses import dataclass

import redis

from bench.events import cpu_seconds
from bench.loadgen import RunResult, Workload
from bench.report import Summary
from bench.run import (
    APPOINTMENT,
    Bench,
    log,
    phase_heading,
    run_phase_alone,
    write_lines,
)

#: The docs/performance.md section this phase owns.
SECTION = "limits"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Budgets no load reaches: every request takes a token, none is refused.
UNREACHABLE = {
    "OVERPLANE_RATE_LIMIT": "on",
    "OVERPLANE_RATE_LIMIT_TEST_PER_SECOND": "1000000000",
    "OVERPLANE_RATE_LIMIT_TEST_BURST": "1000000000",
}
ARMS = ("off", "in process", "Redis")


@dataclass(frozen=True, slots=True)
class Measured:
    """One run and the CPU time it cost per request: the server's and Redis's (µs)."""

    result: RunResult
    server_us: float
    redis_us: float


@dataclass(frozen=True, slots=True)
class LimitsRow:
    """Retrieve with the limiter in one place, against limits off, round by round."""

    arm: str
    limited: Summary
    off: Summary
    #: Median CPU µs per request, limited and off: the server process's, and Redis's.
    server_us: float
    off_server_us: float
    redis_us: float

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios: req/s limited / req/s off."""
        return statistics.median(
            a.rps / b.rps for a, b in zip(self.limited.runs, self.off.runs, strict=True)
        )

    @property
    def failed(self) -> int:
        return self.limited.failed + self.off.failed


def run_phase(bench: Bench) -> list[LimitsRow]:
    """The three servers on one SQLite database, measured in rotating rounds."""
    config = bench.config
    database_url = f"sqlite:///{bench.workdir / 'limits.sqlite3'}"
    prefix = f"overplane-bench-{secrets.token_hex(6)}"
    envs = {
        "off": {"OVERPLANE_RATE_LIMIT": "off"},
        "in process": UNREACHABLE,
        "Redis": {
            **UNREACHABLE,
            "OVERPLANE_REDIS_URL": REDIS_URL,
            "OVERPLANE_REDIS_PREFIX": prefix,
        },
    }
    measured: dict[str, list[Measured]] = {arm: [] for arm in ARMS}
    redis_pid = _redis_pid()
    try:
        with (
            bench.overplane("limits-off", database_url, extra_env=envs["off"]) as off,
            bench.overplane("limits-local", database_url, extra_env=envs["in process"]) as local,
            bench.overplane("limits-redis", database_url, extra_env=envs["Redis"]) as shared,
        ):
            servers = {"off": off, "in process": local, "Redis": shared}
            seeded = bench.seed(off, APPOINTMENT)
            ids = write_lines(bench.workdir / "limits-ids", random.sample(seeded, len(seeded)))
            retrieve = Workload("retrieve", APPOINTMENT.path, ids=ids)
            for arm in ARMS:
                bench.run_once(servers[arm], retrieve, config.warmup, None)
            for repetition in range(config.repetitions):
                shift = repetition % len(ARMS)
                for arm in ARMS[shift:] + ARMS[:shift]:
                    (pid,) = servers[arm].worker_pids()
                    server_before, redis_before = cpu_seconds(pid), cpu_seconds(redis_pid)
                    result = bench.run_once(servers[arm], retrieve, config.duration, None)
                    requests = max(1, result.requests)
                    server_us = (cpu_seconds(pid) - server_before) / requests * 1e6
                    redis_us = (cpu_seconds(redis_pid) - redis_before) / requests * 1e6
                    measured[arm].append(Measured(result, server_us, redis_us))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            stale = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if stale:
                client.delete(*stale)
        except redis.RedisError as exc:
            log(f"limits: could not clean the Redis keys under {prefix}: {exc}")
        finally:
            client.close()

    def summary(arm: str) -> Summary:
        return Summary(tuple(m.result for m in measured[arm]))

    def median_us(arm: str, redis_side: bool = False) -> float:
        return statistics.median(m.redis_us if redis_side else m.server_us for m in measured[arm])

    rows = [
        LimitsRow(
            arm,
            summary(arm),
            summary("off"),
            median_us(arm),
            median_us("off"),
            median_us(arm, redis_side=True),
        )
        for arm in ARMS
    ]
    for row in rows:
        flag = f"  FAILED {row.failed}" if row.failed else ""
        log(
            f"limits     {row.arm:10} retrieve {row.limited.rps:8,.0f} req/s  "
            f"off {row.off.rps:8,.0f} req/s  ratio {row.ratio:.3f}  "
            f"server CPU {row.server_us:.0f} µs/request (off {row.off_server_us:.0f}), "
            f"Redis CPU {row.redis_us:.0f} µs/request{flag}"
        )
    return rows


def _redis_pid() -> int:
    """The Redis server's process id (its CPU time is read from /proc, as the server's)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pid: int = client.info("server")["process_id"]
        return pid
    finally:
        client.close()


def table(rows: list[LimitsRow]) -> list[str]:
    """The markdown table of the phase."""
    lines = [
        "| limiter | retrieve req/s | min – max | limits off req/s | limited / off "
        "(median of rounds) | server CPU µs per request (off) | its cost | Redis CPU µs "
        "per request | p50 / p99 ms | failed |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        limited, off = row.limited, row.off
        cost = row.server_us - row.off_server_us
        lines.append(
            f"| {row.arm} | {limited.rps:,.0f} | {limited.rps_min:,.0f} – {limited.rps_max:,.0f} "
            f"| {off.rps:,.0f} | {row.ratio:.3f} | {row.server_us:.0f} ({row.off_server_us:.0f}) "
            f"| {cost:+.0f} | {row.redis_us:.1f} "
            f"| {limited.p50_ms:.2f} / {limited.p99_ms:.2f} | {row.failed} |"
        )
    return lines


def render(bench: Bench, rows: list[LimitsRow], wall_seconds: float, load: str) -> str:
    """The generated ``limits`` section: when, on what, with which settings, and the table."""
    config = bench.config
    return "\n".join(
        [
            *phase_heading(bench, "limits"),
            f"Settings: SQLite, {config.repetitions} rounds of {config.duration} s runs after "
            f"{config.warmup} s warm-ups, {config.connections} connections, "
            f"{config.seed_count:,} seeded appointments, server CPUs {config.server_cpus}, "
            f"wrk CPUs {config.client_cpus}, Redis unpinned, wall time "
            f"{wall_seconds / 60:.1f} min, load average (1 min) at start and end {load}.",
            "",
            *table(rows),
        ]
    )


def main() -> int:
    """Run the phase alone and replace the ``limits`` section of ``docs/performance.md``."""
    return run_phase_alone(SECTION, run_phase, render)


if __name__ == "__main__":
    sys.exit(main())
