"""Starting and stopping the servers under test, pinned to their cores, and reading their memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers_http(port: int) -> bool:
    """Whether something on ``port`` answers ``GET /healthz`` with an HTTP status line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Server:
    """A running server: its top process and where it listens."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the top process, or its spawned workers."""
        children = child_pids(self.process.pid)
        workers = [pid for pid in children if b"spawn_main" in _cmdline(pid)]
        return workers or [self.process.pid]

    def rss_mib(self) -> list[float]:
        """Resident memory of each worker, in MiB."""
        return [rss_mib(pid) for pid in self.worker_pids()]


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        children += [int(child) for child in text]
    return children


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def rss_mib(pid: int) -> float:
    """The resident set size of ``pid`` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


#: The HTTP server under test (``BENCH_HTTP_SERVER``): ``overplane serve --http-server`` and
#: the ceiling both run on it.
HTTP_SERVER = os.environ.get("BENCH_HTTP_SERVER", "uvicorn")
if HTTP_SERVER not in {"uvicorn", "granian"}:
    raise SystemExit(f"BENCH_HTTP_SERVER must be uvicorn or granian, not {HTTP_SERVER!r}")


def overplane_command(port: int, workers: int = 1) -> list[str]:
    """``overplane serve`` as the benchmark runs it."""
    return [
        str(VENV_BIN / "overplane"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--http-server",
        HTTP_SERVER,
    ]


def ceiling_command(port: int) -> list[str]:
    """The ceiling app on the HTTP server and settings ``overplane serve`` uses."""
    if HTTP_SERVER == "granian":
        return [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--working-dir", str(ROOT), "bench.ceiling:app"),
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.ceiling:app",
        "--app-dir",
        str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--lifespan",
        "on",
        "--log-level",
        "info",
    ]


@contextmanager
def serving(
    command: Sequence[str],
    port: int,
    *,
    env: Mapping[str, str],
    cpus: str | None,
    log: IO[bytes],
    startup_seconds: float = 60,
) -> Iterator[Server]:
    """Run ``command`` (pinned to ``cpus`` with taskset, if given) until the block ends."""
    argv = ["taskset", "-c", cpus, *command] if cpus is not None else list(command)
    process = subprocess.Popen(
        argv,
        # Without rate limits unless asked (bench/limits.py measures them): the benchmark sends
        # thousands of requests a second with one key.
        env={**os.environ, "OVERPLANE_RATE_LIMIT": "off", **env},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_seconds
        while not answers_http(port):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {' '.join(argv)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {startup_seconds} s")
            time.sleep(0.1)
        yield Server(process, port)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and its workers: SIGINT (graceful), then SIGKILL after 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
