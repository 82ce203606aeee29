"""Running wrk with ``bench/scenario.lua`` and reading back its one-line JSON result."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCENARIO = Path(__file__).with_name("scenario.lua")
RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class Workload:
    """What one wrk run sends: the scenario mode and the files it reads."""

    mode: str  # retrieve, list, create, update, delete or mix
    path: str  # the collection path, e.g. /api/crm/appointment
    ids: Path | None = None  # object ids to retrieve, update or delete
    body: Path | None = None  # the JSON body of a create
    patch: Path | None = None  # the JSON body of an update
    created: Path | None = None  # create: where to append the ids of created objects


@dataclass(frozen=True, slots=True)
class RunResult:
    """One measured run: throughput, latency and every response that was not a success."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    failed: int  # status >= 400 (including 404s) and socket errors
    not_found: int  # 404s, counted by the script where it reads responses (create, delete)
    exhausted: bool  # delete: the id list ran out before the duration ended

    @property
    def valid(self) -> bool:
        """A run with any failed request does not measure the operation it claims to."""
        return self.failed == 0


def _arg(path: Path | None) -> str:
    return str(path) if path is not None else "-"


def wrk_command(
    base_url: str,
    key: str,
    workload: Workload,
    *,
    seconds: int,
    connections: int,
    cpus: str | None = None,
) -> list[str]:
    """The wrk command line of one run: one thread, ``connections`` connections, ``seconds``.

    wrk runs on ``cpus`` (a taskset list) if given, else on the CPUs this process is pinned to.
    """
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    return [
        *pin,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
        "-s",
        str(SCENARIO),
        base_url,
        "--",
        workload.mode,
        workload.path,
        _arg(workload.ids),
        _arg(workload.body),
        _arg(workload.patch),
        _arg(workload.created),
    ]


def parse_result(returncode: int, stdout: str, stderr: str) -> RunResult:
    """The figures of a finished wrk run, from the script's BENCH_RESULT line.

    Throughput is wrk's own (requests over the whole run), except for a delete run that used up
    its ids early: there the script's clock (first request to last response) gives the time
    actually spent, since wrk waits out the duration either way.
    """
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({returncode}): {stderr.strip() or stdout}")
    raw = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    exhausted = bool(raw["exhausted"])
    if exhausted and raw["elapsed_us"] > 0:
        seconds_spent = raw["elapsed_us"] / 1e6
        rps = raw["ok"] / seconds_spent
    else:
        seconds_spent = raw["duration_us"] / 1e6
        rps = raw["requests"] / seconds_spent
    return RunResult(
        rps=rps,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        requests=int(raw["requests"]),
        seconds=seconds_spent,
        failed=int(raw["status_errors"]) + int(raw["socket_errors"]),
        not_found=int(raw["not_found"]),
        exhausted=exhausted,
    )


def run_wrk(
    base_url: str,
    key: str,
    workload: Workload,
    *,
    seconds: int,
    connections: int,
    cpus: str | None = None,
) -> RunResult:
    """Run one wrk load of ``workload`` and return its figures."""
    command = wrk_command(
        base_url, key, workload, seconds=seconds, connections=connections, cpus=cpus
    )
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    return parse_result(completed.returncode, completed.stdout, completed.stderr)


class BackgroundLoad:
    """A wrk run in the background, while something else (a profiler, a memory probe) works."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def running(self) -> bool:
        """Whether wrk is still running."""
        return self._process.poll() is None

    def result(self) -> RunResult:
        """Wait for wrk to finish and return its figures."""
        stdout, stderr = self._process.communicate()
        return parse_result(self._process.returncode, stdout, stderr)


def wrk_version() -> str:
    """wrk's version line, e.g. ``wrk debian/4.1.0-3+b2 [epoll]``."""
    completed = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (completed.stdout or completed.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()
