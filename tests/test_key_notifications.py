"""A revoked key stops working at once, however it was revoked, while servers cache keys.

Each server process caches key lookups (one query saved per request) only while it hears every
change to the keys: on PostgreSQL a key-watch connection LISTENs for the notifications a
trigger on ``api_keys`` sends; on SQLite an inotify watch hears every write to the database's
directory. These tests revoke keys with plain SQL from outside the server (no project code
involved), prove the caches are really used, and kill PostgreSQL's listening connection to
check that the cache is not trusted while revocations cannot be heard.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from overplane.auth import keys
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import (
    KEY_WATCH_APPLICATION_NAME,
    KEY_WATCH_RETRY_SECONDS,
    SQLiteDatabase,
)
from tests.helpers import (
    NO_LIMITS,
    RunningServer,
    ServerLauncher,
    new_api_key,
    run_cli,
    sql,
)

PATH = "/api/accounts/party-link"
#: A notification crosses processes in milliseconds; this bound only keeps a broken build from
#: hanging the suite.
PROPAGATION_SECONDS = 2.0


def revoke_all_by_sql(database_url: str) -> None:
    """Revoke every key with a plain UPDATE, as an operator (or a restore) might."""
    sql(database_url, "UPDATE api_keys SET revoked_at = 1 WHERE revoked_at IS NULL")


def status(server: RunningServer, key: str) -> int:
    response = httpx.get(
        server.base_url + PATH, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    return response.status_code


def seconds_until_refused(
    server: RunningServer, key: str, bound: float = PROPAGATION_SECONDS
) -> float:
    """How long after now the server starts refusing ``key`` (fails past ``bound``)."""
    started = time.monotonic()
    while status(server, key) == 200:
        elapsed = time.monotonic() - started
        assert elapsed < bound, f"revoked key still accepted after {elapsed:.2f} s"
        time.sleep(0.01)
    assert status(server, key) == 401
    return time.monotonic() - started


def key_watchers(database_url: str) -> int:
    """Key-watch connections open on the server's PostgreSQL database."""
    rows = sql(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        f"AND application_name = '{KEY_WATCH_APPLICATION_NAME}'",
    )
    return int(str(rows[0][0]))


@pytest.mark.slow
def test_a_key_revoked_by_plain_sql_is_refused(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """A key the server has just accepted (and may cache) is refused right after an UPDATE
    from another connection: at once on SQLite, within milliseconds on PostgreSQL."""
    server, key = start_server.with_new_key(fresh_database_url)
    for _ in range(3):  # warm any cache
        assert status(server, key) == 200
    revoke_all_by_sql(fresh_database_url)
    elapsed = seconds_until_refused(server, key)
    if fresh_database_url.startswith("sqlite"):
        assert elapsed < 0.2  # the first request after the UPDATE was refused


@pytest.mark.slow
def test_postgres_caches_keys_only_while_it_hears_revocations(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """PostgreSQL: a cached key is answered without its table (proof the cache is used; a
    rename is DDL, which notifies nobody); once the listening connection is killed, a
    revocation made while nobody listens is still honoured; the watch reconnects and caching
    resumes. (SQLite: test_sqlite_caches_keys_and_forgets_them_on_any_write.)"""
    if fresh_database_url.startswith("sqlite"):
        return
    server, key = start_server.with_new_key(fresh_database_url)
    assert status(server, key) == 200
    sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    try:
        assert status(server, key) == 200  # remembered
    finally:
        sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")

    assert key_watchers(fresh_database_url) == 1
    sql(
        fresh_database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        f"current_database() AND application_name = '{KEY_WATCH_APPLICATION_NAME}'",
    )
    revoke_all_by_sql(fresh_database_url)  # nobody hears this notification
    # Well before the watch reconnects (KEY_WATCH_RETRY_SECONDS), which would also clear it.
    seconds_until_refused(server, key, bound=KEY_WATCH_RETRY_SECONDS / 2)

    deadline = time.monotonic() + 15
    while key_watchers(fresh_database_url) != 1:
        assert time.monotonic() < deadline, "the key watch did not reconnect"
        time.sleep(0.1)
    created = run_cli(fresh_database_url, "keys", "create", "--account", "default")
    assert created.returncode == 0, created.stderr
    second_key = created.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 15
    while True:  # looked up, and cached again once the new connection's probe came back
        assert status(server, second_key) == 200
        sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
        try:
            if status(server, second_key) == 200:
                break
        finally:
            sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")
        assert time.monotonic() < deadline, "the key cache did not resume"
        time.sleep(0.2)


def key_lookups(app: OverplaneApp, client: TestClient, key: str) -> int:
    """How many statements on api_keys one authenticated request ran, on SQLite."""
    db = app.db
    assert isinstance(db, SQLiteDatabase)
    statements: list[str] = []
    db._connection.set_trace_callback(statements.append)
    try:
        assert client.get(PATH, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        db._connection.set_trace_callback(None)
    return sum("api_keys" in statement for statement in statements)


@pytest.mark.parametrize("key_cache", [True, False])
def test_sqlite_caches_keys_and_forgets_them_on_any_write(
    tmp_sqlite_url: str, key_cache: bool
) -> None:
    """SQLite: with the cache on, a key is looked up once and then remembered, until any
    process writes to the database (here a plain UPDATE from another connection); with
    OVERPLANE_KEY_CACHE=false it is looked up on every request."""
    migrate.upgrade(tmp_sqlite_url)
    key = new_api_key()
    app = OverplaneApp(
        Settings(database_url=tmp_sqlite_url, access_log=False, key_cache=key_cache, **NO_LIMITS)
    )
    with TestClient(app) as client:
        assert client.portal is not None
        assert app.db is not None
        client.portal.call(keys.ensure_bootstrap, app.db, key)
        assert key_lookups(app, client, key) == 1
        assert key_lookups(app, client, key) == (0 if key_cache else 1)
        sql(tmp_sqlite_url, "UPDATE accounts SET name = name")  # any write, by anyone
        time.sleep(0.05)
        assert key_lookups(app, client, key) == 1
        assert key_lookups(app, client, key) == (0 if key_cache else 1)


@pytest.mark.slow
def test_key_cache_can_be_switched_off(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """OVERPLANE_KEY_CACHE=false: on PostgreSQL no listening connection, every key looked up.
    (SQLite: test_sqlite_caches_keys_and_forgets_them_on_any_write.)"""
    assert Settings().key_cache  # on by default
    server, key = start_server.with_new_key(fresh_database_url, OVERPLANE_KEY_CACHE="false")
    assert status(server, key) == 200
    if fresh_database_url.startswith("sqlite"):
        return
    assert key_watchers(fresh_database_url) == 0
    sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    try:
        assert status(server, key) == 500  # looked up, not remembered
    finally:
        sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")


def test_servers_started_and_stopped_at_once_shut_down_promptly(database_url: str) -> None:
    """Shutdown right after start-up, while the key watch is still connecting or probing,
    never hangs (a cancellation swallowed by the driver once made it wait forever)."""

    def start_and_stop() -> None:
        for _ in range(10):
            with TestClient(
                OverplaneApp(Settings(database_url=database_url, access_log=False, **NO_LIMITS))
            ):
                pass

    worker = threading.Thread(target=start_and_stop, daemon=True)
    began = time.monotonic()
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "a shutdown hung"
    assert time.monotonic() - began < 60
