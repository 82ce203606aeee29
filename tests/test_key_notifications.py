"""A revoked key stops working at once, however it was revoked, while servers cache keys.

On PostgreSQL each server process caches key lookups (one query saved per request) only while
its key-watch connection LISTENs for the notifications a trigger on ``api_keys`` sends; on
SQLite nothing is cached by default. These tests revoke keys with plain SQL from outside the
server (no project code involved), prove the PostgreSQL cache is really used, and kill the
listening connection to check that the cache is not trusted while revocations cannot be heard.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time

import asyncpg
import httpx

from overplane.settings import Settings
from overplane.storage.database import (
    KEY_WATCH_APPLICATION_NAME,
    KEY_WATCH_RETRY_SECONDS,
    sqlite_path,
)
from servers import RunningServer, ServerLauncher, run_cli

PATH = "/api/accounts/party-link"
#: A notification crosses processes in milliseconds; this bound only keeps a broken build from
#: hanging the suite.
PROPAGATION_SECONDS = 2.0


def sql(database_url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on the server's database from outside the server."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(sqlite_path(database_url), timeout=10, isolation_level=None)
        try:
            return connection.execute(statement).fetchall()
        finally:
            connection.close()

    async def run() -> list[tuple[object, ...]]:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            return [tuple(row) for row in await connection.fetch(statement)]
        finally:
            await connection.close()

    return asyncio.run(run())


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


def start(start_server: ServerLauncher, database_url: str, **env: str) -> tuple[RunningServer, str]:
    key = "sk_test_" + secrets.token_hex(16)
    return start_server(database_url, OVERPLANE_BOOTSTRAP_KEY=key, **env), key


def key_watchers(database_url: str) -> int:
    """Key-watch connections open on the server's PostgreSQL database."""
    rows = sql(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        f"AND application_name = '{KEY_WATCH_APPLICATION_NAME}'",
    )
    return int(str(rows[0][0]))


def test_a_key_revoked_by_plain_sql_is_refused(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """A key the server has just accepted (and may cache) is refused right after an UPDATE
    from another connection: at once on SQLite, within milliseconds on PostgreSQL."""
    server, key = start(start_server, fresh_database_url)
    for _ in range(3):  # warm any cache
        assert status(server, key) == 200
    revoke_all_by_sql(fresh_database_url)
    elapsed = seconds_until_refused(server, key)
    if fresh_database_url.startswith("sqlite"):
        assert elapsed < 0.2  # the first request after the UPDATE was refused


def test_postgres_caches_keys_only_while_it_hears_revocations(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """PostgreSQL: a cached key is answered without its table (proof the cache is used); once
    the listening connection is killed, a revocation made while nobody listens is still
    honoured; the watch reconnects and caching resumes. SQLite: nothing is cached, so the key
    table is needed on every request."""
    server, key = start(start_server, fresh_database_url)
    assert status(server, key) == 200
    sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    try:
        answered_without_table = status(server, key)
    finally:
        sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")
    if fresh_database_url.startswith("sqlite"):
        assert answered_without_table == 500  # looked up, not remembered
        return
    assert answered_without_table == 200

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
    assert status(server, second_key) == 200  # looked up, and cached again
    sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    try:
        assert status(server, second_key) == 200
    finally:
        sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")


def test_key_notifications_can_be_switched_off(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """OVERPLANE_PG_KEY_NOTIFICATIONS=false: no listening connection, every key looked up."""
    assert Settings().pg_key_notifications  # on by default
    server, key = start(start_server, fresh_database_url, OVERPLANE_PG_KEY_NOTIFICATIONS="false")
    assert status(server, key) == 200
    if not fresh_database_url.startswith("sqlite"):
        assert key_watchers(fresh_database_url) == 0
    sql(fresh_database_url, "ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    try:
        assert status(server, key) == 500  # looked up, not remembered
    finally:
        sql(fresh_database_url, "ALTER TABLE api_keys_elsewhere RENAME TO api_keys")
