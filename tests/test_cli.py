"""The ``overplane`` command end to end: real server processes over real HTTP.

Covers: a brand-new installation prints its first key once; a bootstrap key from the
environment; key management (create prints the secret as the last stdout line, list never shows
it, revoke stops it at once); the published pages' curl flow; the access log; ``--no-migrate``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from conftest import BACKENDS, POSTGRES_ENV, _admin, with_database_name

OVERPLANE = [sys.executable, "-m", "overplane.cli.main"]
APPOINTMENT_CURL_BODY = (
    '{"customer_name":"customer_name_example","scheduled_time":"scheduled_time_example",'
    '"status":"draft","customer_email":"[email\xa0protected]"}'
)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of this test's own on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.sqlite3'}"
        return
    admin_url = os.environ[POSTGRES_ENV]
    name = f"overplane_cli_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database_name(admin_url, name)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one ``overplane`` command to completion."""
    environ = {**os.environ, "OVERPLANE_DATABASE_URL": database_url, **env}
    return subprocess.run(
        [*OVERPLANE, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class RunningServer:
    """An ``overplane serve`` process and what it printed."""

    process: subprocess.Popen[str]
    base_url: str
    log_path: Path
    printed: str = ""

    def stdout_lines(self) -> list[str]:
        """What the server printed on standard output before it started serving."""
        return [line for line in self.printed.splitlines() if line.strip()]

    def log(self) -> str:
        """Everything the server wrote to standard error so far."""
        return self.log_path.read_text()


class StartServer(Protocol):
    """Starts ``overplane serve`` on a database, with extra environment variables."""

    def __call__(self, database_url: str, *args: str, **env: str) -> RunningServer: ...


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """A function that starts ``overplane serve`` and waits until it answers /healthz."""
    started: list[RunningServer] = []

    def start(database_url: str, *args: str, **env: str) -> RunningServer:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        out_path = tmp_path / f"server-{port}.out"
        environ = {**os.environ, "OVERPLANE_DATABASE_URL": database_url, **env}
        process = subprocess.Popen(
            [*OVERPLANE, "serve", "--port", str(port), *args],
            env=environ,
            stdout=out_path.open("w"),
            stderr=log_path.open("w"),
            text=True,
        )
        server = RunningServer(process, f"http://127.0.0.1:{port}", log_path)
        started.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"serve exited early: {log_path.read_text()}")
            try:
                if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                    server.printed = out_path.read_text()
                    return server
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"serve did not answer in 30 s: {log_path.read_text()}")

    yield start
    for server in started:
        server.process.terminate()
        server.process.wait(timeout=15)


def test_new_installation_prints_a_working_key_once(
    fresh_database_url: str, start_server: StartServer
) -> None:
    """An empty database: serve creates the default account and a test key and prints it."""
    server = start_server(fresh_database_url)
    key = server.stdout_lines()[-1]
    assert key.startswith("sk_test_")
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(server.base_url + "/api/crm/appointment", headers=auth).status_code == 200
    server.process.terminate()
    server.process.wait(timeout=15)

    again = start_server(fresh_database_url)
    assert key not in again.printed
    assert "sk_test_" not in again.printed
    assert httpx.get(again.base_url + "/api/crm/appointment", headers=auth).status_code == 200


def test_published_curl_flow_with_the_bootstrap_key(
    fresh_database_url: str, start_server: StartServer
) -> None:
    """The README's promise: create, list, update and delete with a key known in advance."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(fresh_database_url, OVERPLANE_BOOTSTRAP_KEY=key)
    assert "sk_test_" not in server.printed  # nothing generated: the operator chose the key
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, headers=auth) as client:
        created = client.post(
            "/api/crm/appointment",
            content=APPOINTMENT_CURL_BODY.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 201, created.text
        appointment = created.json()
        assert appointment["scheduled_time"] == "scheduled_time_example"
        listed = client.get("/api/crm/appointment").json()
        assert listed["total"] == 1
        assert listed["data"][0]["id"] == appointment["id"]
        updated = client.patch(
            f"/api/crm/appointment/{appointment['id']}",
            json={
                "customer_name": "customer_name_example",
                "customer_phone_number": "customer_phone_number_example",
            },
        )
        assert updated.json()["customer_phone_number"] == "customer_phone_number_example"
        deleted = client.delete(f"/api/crm/appointment/{appointment['id']}")
        assert deleted.json() == {"id": appointment["id"], "deleted": True}
        assert client.get(f"/api/crm/appointment/{appointment['id']}").status_code == 404


def test_bad_bootstrap_key_refuses_to_start(fresh_database_url: str) -> None:
    """A malformed OVERPLANE_BOOTSTRAP_KEY is a clear start-up error, not a silent default."""
    result = run_cli(fresh_database_url, "serve", OVERPLANE_BOOTSTRAP_KEY="not-a-key")
    assert result.returncode == 1
    assert "OVERPLANE_BOOTSTRAP_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_management_against_a_running_server(
    fresh_database_url: str, start_server: StartServer
) -> None:
    """keys create prints the secret last; list masks it; revoke stops it on the next request."""
    assert run_cli(fresh_database_url, "accounts", "create", "acme").returncode == 0
    duplicate = run_cli(fresh_database_url, "accounts", "create", "acme")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    created = run_cli(fresh_database_url, "keys", "create", "--account", "acme", "--mode", "live")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk_live_")

    listing = run_cli(fresh_database_url, "keys", "list", "--account", "acme")
    assert listing.returncode == 0
    assert secret not in listing.stdout
    assert f"sk_live_…{secret[-4:]}" in listing.stdout
    key_id = next(word for word in listing.stdout.split() if word.startswith("key_"))

    server = start_server(fresh_database_url)
    auth = {"Authorization": f"Bearer {secret}"}
    url = server.base_url + "/api/accounts/party-link"
    assert httpx.get(url, headers=auth).status_code == 200

    assert run_cli(fresh_database_url, "keys", "revoke", key_id).returncode == 0
    refused = httpx.get(url, headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_invalid"
    listing = run_cli(fresh_database_url, "keys", "list")
    revoked_row = next(line for line in listing.stdout.splitlines() if key_id in line)
    stamps = re.findall(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", revoked_row)
    assert len(stamps) == 2  # both a created and a revoked time
    assert run_cli(fresh_database_url, "keys", "revoke", key_id).returncode == 1

    unknown = run_cli(fresh_database_url, "keys", "create", "--account", "nobody")
    assert unknown.returncode == 1
    assert "no account named" in unknown.stderr


def test_access_log_has_one_line_per_request_and_never_the_key(
    fresh_database_url: str, start_server: StartServer
) -> None:
    """Access log: method, path, status, duration, request id, account id; no key."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(fresh_database_url, OVERPLANE_BOOTSTRAP_KEY=key)
    ok = httpx.get(
        server.base_url + "/api/crm/appointment", headers={"Authorization": f"Bearer {key}"}
    )
    bad = httpx.get(
        server.base_url + "/api/crm/appointment", headers={"Authorization": f"Bearer {key}x"}
    )
    time.sleep(0.2)
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines}
    ok_line = by_id[ok.headers["request-id"]]
    assert ok_line["method"] == "GET"
    assert ok_line["path"] == "/api/crm/appointment"
    assert ok_line["status"] == 200
    assert ok_line["account_id"].startswith("acct_")
    assert isinstance(ok_line["duration_ms"], float)
    assert by_id[bad.headers["request-id"]]["status"] == 401
    assert by_id[bad.headers["request-id"]]["account_id"] is None
    assert key[8:] not in server.log()


def test_serve_without_migrate_refuses_an_outdated_schema(fresh_database_url: str) -> None:
    """``serve --no-migrate`` names the command to run instead of serving a wrong schema."""
    result = run_cli(fresh_database_url, "serve", "--no-migrate")
    assert result.returncode == 1
    assert "overplane migrate" in result.stderr
    migrated = run_cli(fresh_database_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
