"""The ``overplane`` command end to end: real server processes over real HTTP.

Covers: a brand-new installation prints its first key once; a bootstrap key from the
environment; key management (create prints the secret as the last stdout line, list never shows
it, revoke stops it at once); the published pages' curl flow; the access log; ``--no-migrate``
(refuses an outdated schema and never upgrades it); ``serve`` migrates once; ``--version``.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from overplane.cli import main as cli
from overplane.storage import migrate
from tests.helpers import (
    RunningServer,
    ServerLauncher,
    assert_clean_failure,
    run_cli,
)

APPOINTMENT_CURL_BODY = (
    '{"customer_name":"customer_name_example","scheduled_time":"scheduled_time_example",'
    '"status":"draft","customer_email":"[email\xa0protected]"}'
)


@pytest.mark.slow
def test_new_installation_prints_a_working_key_once(
    fresh_database_url: str, start_server: ServerLauncher
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


@pytest.mark.slow
def test_published_curl_flow_with_the_bootstrap_key(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """The README's promise: create, list, update and delete with a key known in advance."""
    server, key = start_server.with_new_key(fresh_database_url)
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


@pytest.mark.slow
def test_bad_bootstrap_key_refuses_to_start(fresh_database_url: str) -> None:
    """A malformed OVERPLANE_BOOTSTRAP_KEY is a clear start-up error, not a silent default."""
    result = run_cli(fresh_database_url, "serve", OVERPLANE_BOOTSTRAP_KEY="not-a-key")
    assert_clean_failure(result, "OVERPLANE_BOOTSTRAP_KEY")


@pytest.mark.slow
def test_key_management_against_a_running_server(
    fresh_database_url: str, start_server: ServerLauncher
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


def access_lines(server: RunningServer) -> dict[str, dict[str, object]]:
    """The server's access-log lines so far, by request id."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return {line["request_id"]: line for line in lines if line["logger"] == "overplane.access"}


@pytest.mark.slow
def test_access_log_has_one_line_per_request_and_never_the_key(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """Access log: method, path, status, duration, request id, account id; no key."""
    server, key = start_server.with_new_key(fresh_database_url)
    ok = httpx.get(
        server.base_url + "/api/crm/appointment", headers={"Authorization": f"Bearer {key}"}
    )
    bad = httpx.get(
        server.base_url + "/api/crm/appointment", headers={"Authorization": f"Bearer {key}x"}
    )
    ids = {ok.headers["request-id"], bad.headers["request-id"]}
    deadline = time.monotonic() + 10  # lines are written in batches, 0.2 s apart by default
    while not ids <= access_lines(server).keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    by_id = access_lines(server)
    ok_line = by_id[ok.headers["request-id"]]
    assert list(ok_line) == [
        "time",
        "level",
        "logger",
        "pid",
        "method",
        "path",
        "status",
        "duration_ms",
        "request_id",
        "account_id",
    ]
    assert ok_line["method"] == "GET"
    assert ok_line["path"] == "/api/crm/appointment"
    assert ok_line["status"] == 200
    assert isinstance(ok_line["account_id"], str)
    assert ok_line["account_id"].startswith("acct_")
    assert isinstance(ok_line["duration_ms"], float)
    assert isinstance(ok_line["time"], str)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", ok_line["time"])
    assert by_id[bad.headers["request-id"]]["status"] == 401
    assert by_id[bad.headers["request-id"]]["account_id"] is None
    assert key[8:] not in server.log()


@pytest.mark.slow
def test_buffered_access_log_is_written_out_at_shutdown(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """With a long flush interval the lines wait in the buffer; SIGTERM still writes them."""
    server, key = start_server.with_new_key(
        fresh_database_url, OVERPLANE_ACCESS_LOG_FLUSH_SECONDS="600"
    )
    with server.client(key) as client:
        ids = [client.get("/api/accounts/party-link").headers["request-id"] for _ in range(3)]
    time.sleep(0.3)
    assert not set(ids) & access_lines(server).keys()  # still buffered
    assert server.stop() == 0
    assert set(ids) <= access_lines(server).keys()


@pytest.mark.slow
def test_serve_without_migrate_refuses_an_outdated_schema(fresh_database_url: str) -> None:
    """``serve --no-migrate`` names the command to run instead of serving a wrong schema, and
    leaves the schema as it found it: an empty database stays unmigrated, one at an older
    revision stays there, until ``overplane migrate`` upgrades it."""
    result = run_cli(fresh_database_url, "serve", "--no-migrate")
    assert_clean_failure(result, "overplane migrate")
    assert migrate.current_revision(fresh_database_url) is None

    older = "0003"
    assert older != migrate.head_revision()
    migrate.upgrade(fresh_database_url, revision=older)
    result = run_cli(fresh_database_url, "serve", "--no-migrate")
    assert_clean_failure(result, "overplane migrate")
    assert migrate.current_revision(fresh_database_url) == older

    migrated = run_cli(fresh_database_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrate.current_revision(fresh_database_url) == migrate.head_revision()


@pytest.mark.parametrize(("options", "upgrades"), [([], 1), (["--no-migrate"], 0)])
def test_serve_migrates_once_or_never(
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    upgrades: int,
) -> None:
    """``serve`` runs the migrations exactly once before serving; ``serve --no-migrate`` on an
    up-to-date database never runs them (in process, with the HTTP server stubbed out)."""
    migrate.upgrade(fresh_database_url)
    real_upgrade = migrate.upgrade
    upgraded: list[str] = []

    def counting_upgrade(
        database_url: str, extra_versions: Sequence[Path] = (), *, revision: str = "head"
    ) -> None:
        upgraded.append(database_url)
        real_upgrade(database_url, extra_versions, revision=revision)

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(migrate, "upgrade", counting_upgrade)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.append(kwargs))
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own handlers
    result = CliRunner().invoke(
        cli.app, ["serve", *options], env={"OVERPLANE_DATABASE_URL": fresh_database_url}
    )
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    assert len(upgraded) == upgrades


def test_version_prints_the_installed_version() -> None:
    """``overplane --version`` prints the package's version (pyproject.toml's) and exits 0."""
    result = run_cli("sqlite:///unused.sqlite3", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"overplane {importlib.metadata.version('overplane')}\n"
