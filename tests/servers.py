"""Real ``overplane serve`` processes for end-to-end tests, on free ports of 127.0.0.1.

Each server runs in a process group of its own, so a test can kill it with SIGKILL or stop it
with SIGTERM without touching anything else, and a Ctrl-C of the test run does not reach it
(the launcher stops every server it started at the end of the test). The fixtures that hand
these out (``start_server``, ``fresh_database_url``) live in ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OVERPLANE = [sys.executable, "-m", "overplane.cli.main"]
#: How long a server may take to answer /healthz after it is started (it migrates first).
STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one ``overplane`` command to completion."""
    environ = {**os.environ, "OVERPLANE_DATABASE_URL": database_url, **env}
    return subprocess.run(
        [*OVERPLANE, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class RunningServer:
    """An ``overplane serve`` process and what it printed."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    out_path: Path
    printed: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout_lines(self) -> list[str]:
        """What the server printed on standard output before it started serving."""
        return [line for line in self.printed.splitlines() if line.strip()]

    def log(self) -> str:
        """Everything the server wrote to standard error so far."""
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = STARTUP_SECONDS) -> None:
        """Wait until the server answers /healthz; fail if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early: {self.log()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    self.printed = self.out_path.read_text()
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"serve did not answer in {timeout} s: {self.log()}")

    def client(self, key: str, **kwargs: Any) -> httpx.Client:
        """An HTTP client of this server that sends ``key`` with every request."""
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash would, and reap it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> int:
        """SIGTERM the server, wait for it to exit (SIGKILL after 15 s); its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()


class ServerLauncher:
    """Starts ``overplane serve`` processes, and stops every one of them at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[RunningServer] = []

    def launch(self, database_url: str, *args: str, **env: str) -> RunningServer:
        """Start ``overplane serve`` on ``database_url`` with extra environment variables,
        on a free port, without waiting for it (see :meth:`RunningServer.wait_ready`)."""
        port = free_port()
        log_path = self.directory / f"server-{port}.log"
        out_path = self.directory / f"server-{port}.out"
        environ = {**os.environ, "OVERPLANE_DATABASE_URL": database_url, **env}
        with out_path.open("wb") as out, log_path.open("wb") as log:
            process = subprocess.Popen(
                [*OVERPLANE, "serve", "--port", str(port), *args],
                env=environ,
                stdout=out,
                stderr=log,
                start_new_session=True,
            )
        server = RunningServer(process, port, log_path, out_path)
        self.started.append(server)
        return server

    def __call__(self, database_url: str, *args: str, **env: str) -> RunningServer:
        """Start ``overplane serve`` and wait until it answers /healthz."""
        server = self.launch(database_url, *args, **env)
        server.wait_ready()
        return server

    def stop_all(self) -> None:
        """Stop every server this launcher started (SIGKILL if SIGTERM does not do it)."""
        for server in self.started:
            server.stop()
