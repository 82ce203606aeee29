"""Exact list totals: the counters behind unfiltered totals never drift from a real count.

Covers: random concurrent creates and deletes through two application instances on one
database (as two processes would), in both modes and with a second account and the other
resource writing alongside; real ``overplane serve`` processes killed with SIGKILL in the middle
of concurrent writes; and migration 0002, which must backfill the counters and the normalised
``scheduled_time`` of rows written before it. Every check compares with a ``count(*)`` run
directly on the database, never with what the server says about itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from starlette.testclient import TestClient

from conftest import Caller, Server, valid_body
from overplane.auth import keys
from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import is_postgres
from overplane.storage.objects import sqlite_next_seq

MODES = {"test": False, "live": True}

# --------------------------------------------------------------------------------------------
# Reading the database directly


def fetch_row(database_url: str, sql: str, *args: Any) -> tuple[Any, ...]:
    """The first row of ``sql`` (``?`` placeholders), run on the database without the server."""
    if database_url.startswith(("postgresql://", "postgres://")):
        numbered = sql
        for index in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${index}", 1)

        async def run() -> tuple[Any, ...]:
            connection = await asyncpg.connect(database_url, timeout=10)
            try:
                return tuple(await connection.fetchrow(numbered, *args))
            finally:
                await connection.close()

        return asyncio.run(run())
    path = database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, timeout=10)) as connection:
        row: tuple[Any, ...] = connection.execute(sql, args).fetchone()
        return row


def run_transaction(
    database_url: str, statements: list[tuple[str, tuple[Any, ...]]], commit: bool
) -> None:
    """Run ``statements`` (``?`` placeholders) in one transaction on the database, without
    the server, then commit it or roll it back."""
    if database_url.startswith(("postgresql://", "postgres://")):

        async def run() -> None:
            connection = await asyncpg.connect(database_url, timeout=10)
            try:
                transaction = connection.transaction()
                await transaction.start()
                for sql, args in statements:
                    numbered = sql
                    for index in range(1, len(args) + 1):
                        numbered = numbered.replace("?", f"${index}", 1)
                    await connection.execute(numbered, *args)
                await (transaction.commit() if commit else transaction.rollback())
            finally:
                await connection.close()

        asyncio.run(run())
        return
    path = database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        for sql, args in statements:
            connection.execute(sql, args)
        connection.execute("COMMIT" if commit else "ROLLBACK")


def account_id(database_url: str, name: str) -> str:
    """The id of the account called ``name``."""
    return str(fetch_row(database_url, "SELECT id FROM accounts WHERE name = ?", name)[0])


def count_and_counter(
    database_url: str, resource: Resource, account: str, livemode: bool
) -> tuple[int, int]:
    """``count(*)`` of the account's rows in one mode, and the sum of its counter rows.

    One statement, so both are read from one snapshot even if a write is still finishing.
    """
    table = resource.table_name
    row = fetch_row(
        database_url,
        f"SELECT (SELECT count(*) FROM {table} WHERE account_id = ? AND livemode = ?), "
        "(SELECT coalesce(sum(n), 0) FROM object_counts "
        "WHERE table_name = ? AND account_id = ? AND livemode = ?)",
        account,
        livemode,
        table,
        account,
        livemode,
    )
    return int(row[0]), int(row[1])


def table_count_and_counter(database_url: str, resource: Resource) -> tuple[int, int]:
    """``count(*)`` of a whole table and the sum of all its counter rows (every account)."""
    table = resource.table_name
    row = fetch_row(
        database_url,
        f"SELECT (SELECT count(*) FROM {table}), "
        "(SELECT coalesce(sum(n), 0) FROM object_counts WHERE table_name = ?)",
        table,
    )
    return int(row[0]), int(row[1])


def total(caller: Caller, resource: Resource, **params: str) -> int:
    """The ``total`` of a list request."""
    response = caller.get(resource.path, params={"limit": "1", **params})
    assert response.status_code == 200, response.text
    value: int = response.json()["total"]
    return value


#: A filter every object meets: its total is a real count through an index, not the counters.
MATCH_ALL = {"created_at[gte]": "1970-01-01T00:00:00Z"}


@pytest.fixture
def second_server(server: Server) -> Iterator[Server]:
    """A second application instance on the same database, as another process would be."""
    app = OverplaneApp(Settings(database_url=server.database_url, access_log=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Server(app=app, client=client, database_url=server.database_url)


# --------------------------------------------------------------------------------------------
# Two application instances, concurrent writers


def test_totals_stay_exact_across_two_apps(
    server: Server, second_server: Server, resource: Resource
) -> None:
    """Random concurrent creates and deletes through two app instances, in both modes, keep
    the unfiltered total equal to a real count(*) for the account and mode; other accounts and
    the other resource writing at the same time do not leak into it."""
    name = server.new_account()
    callers = {
        mode: [
            server.new_caller(mode, name),
            Caller(second_server.client, server.new_caller(mode, name).key, name),
        ]
        for mode in MODES
    }
    stranger = server.new_caller()
    other_resource = next(r for r in RESOURCES if r != resource)
    alive: dict[str, list[str]] = {mode: [] for mode in MODES}
    lock = threading.Lock()
    failures: list[str] = []

    def work(mode: str, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            caller = rng.choice(callers[mode])
            with lock:
                victim = (
                    alive[mode].pop(rng.randrange(len(alive[mode])))
                    if (alive[mode] and rng.random() < 0.4)
                    else None
                )
            if victim is None:
                response = caller.post(resource.path, json=valid_body(resource))
                if response.status_code != 201:
                    failures.append(response.text)
                    continue
                with lock:
                    alive[mode].append(response.json()["id"])
            else:
                response = caller.delete(f"{resource.path}/{victim}")
                if response.status_code != 200:
                    failures.append(response.text)
            extra = []
            if rng.random() < 0.2:  # the same account's other resource, counted apart
                extra.append(caller.post(other_resource.path, json=valid_body(other_resource)))
            if rng.random() < 0.2:  # another account
                extra.append(stranger.post(resource.path, json=valid_body(resource)))
            failures.extend(r.text for r in extra if r.status_code != 201)

    threads = [
        threading.Thread(target=work, args=(mode, seed))
        for seed, mode in enumerate(["test", "live", "test", "live"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]

    account = account_id(server.database_url, name)
    for mode, livemode in MODES.items():
        expected = len(alive[mode])
        assert count_and_counter(server.database_url, resource, account, livemode) == (
            expected,
            expected,
        )
        for caller in callers[mode]:
            assert total(caller, resource) == expected
            assert total(caller, resource, **MATCH_ALL) == expected
    assert total(stranger, resource) == total(stranger, resource, **MATCH_ALL)


def test_total_follows_each_create_and_delete(server: Server, second_server: Server) -> None:
    """Step by step, alternating between two app instances: the total is exact after every
    write, including a delete of an id that is already gone (which must not count twice)."""
    first = server.new_caller()
    second = Caller(second_server.client, first.key, first.account_name)
    made: list[str] = []
    rng = random.Random(7)
    for step in range(24):
        caller = first if step % 2 else second
        if made and rng.random() < 0.4:
            victim = made.pop(rng.randrange(len(made)))
            assert caller.delete(f"{PARTY_LINK.path}/{victim}").status_code == 200
            other = second if caller is first else first
            assert other.delete(f"{PARTY_LINK.path}/{victim}").status_code == 404
        else:
            response = caller.post(PARTY_LINK.path, json=valid_body(PARTY_LINK))
            assert response.status_code == 201
            made.append(response.json()["id"])
        assert total(first, PARTY_LINK) == total(second, PARTY_LINK) == len(made)
    account = account_id(server.database_url, first.account_name)
    assert count_and_counter(server.database_url, PARTY_LINK, account, False) == (
        len(made),
        len(made),
    )


def test_counters_move_with_the_transaction_of_each_write(server: Server, api: Caller) -> None:
    """Counters change inside the transaction of the write they count, whoever writes (here
    plain SQL, not the server): a rolled-back insert or delete changes nothing, a committed
    one changes the total at once; a row deleted in SQL still works as a cursor."""
    account = account_id(server.database_url, api.account_name)
    table = APPOINTMENT.table_name
    names = ["id", "account_id", "livemode", "created_at", "updated_at", "customer_name"]
    names += ["scheduled_time", "status", "customer_email"]
    insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    if not is_postgres(server.database_url):  # SQLite: the writer gives seq (docs/deployment.md)
        insert = insert.replace(" (id,", " (seq, id,").replace(
            "VALUES (", f"VALUES ({sqlite_next_seq(table)}, "
        )
    delete = f"DELETE FROM {table} WHERE id = ?"

    def row(object_id: str) -> tuple[Any, ...]:
        stamp = time.time_ns() // 1_000_000
        return (object_id, account, False, stamp, stamp, "n", "2024-01-15T09:00:00Z", "s", "e")

    made = [create_appointment(api) for _ in range(2)]
    ghost = APPOINTMENT.id_prefix + secrets.token_hex(12)
    run_transaction(server.database_url, [(insert, row(ghost))], commit=False)
    assert total(api, APPOINTMENT) == 2
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (2, 2)

    direct = [APPOINTMENT.id_prefix + secrets.token_hex(12) for _ in range(2)]
    run_transaction(server.database_url, [(insert, row(i)) for i in direct], commit=True)
    assert total(api, APPOINTMENT) == 4
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (4, 4)

    run_transaction(server.database_url, [(delete, (made[0],))], commit=False)
    assert total(api, APPOINTMENT) == 4
    run_transaction(
        server.database_url, [(delete, (made[0],)), (delete, (direct[0],))], commit=True
    )
    assert total(api, APPOINTMENT) == 2
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (2, 2)
    page = api.get(APPOINTMENT.path, params={"ending_before": made[0]}).json()
    assert [o["id"] for o in page["data"]] == [direct[1], made[1]]


def create_appointment(caller: Caller) -> str:
    """Create an appointment through the API; its id."""
    response = caller.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --------------------------------------------------------------------------------------------
# Crash safety: real server processes killed mid-load


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)


def launch_serve(database_url: str, key: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``overplane serve`` with ``key`` as its bootstrap key; the process and its URL."""
    port = free_port()
    environ = {
        **os.environ,
        "OVERPLANE_DATABASE_URL": database_url,
        "OVERPLANE_BOOTSTRAP_KEY": key,
        "OVERPLANE_ACCESS_LOG": "false",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "overplane.cli.main", "serve", "--port", str(port)],
            env=environ,
            stdout=output,
            stderr=output,
        )
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    """Return once the server answers /healthz; fail if it exits or takes over 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {log.read_text()}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"serve did not answer in 30 s: {log.read_text()}")


def test_counters_survive_sigkill_mid_load(
    fresh_database_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """``overplane serve`` processes (two at a time) take concurrent creates and deletes and
    are killed with SIGKILL, one after another, while requests are in flight; the counters
    still equal a real count(*), and a new server afterwards reports exact totals and keeps
    counting right.

    Four kills rather than one: a counter kept outside the write's transaction drifts only
    when a kill lands between the two, so each kill is another chance to catch it.
    """
    url = fresh_database_url
    key = "sk_test_" + secrets.token_hex(16)
    # Migrate and register the key first, so that two servers can start side by side.
    migrate.upgrade(url)
    setup = OverplaneApp(Settings(database_url=url, access_log=False))
    with TestClient(setup) as client:
        Server(app=setup, client=client, database_url=url).run(keys.ensure_bootstrap, setup.db, key)

    running: list[tuple[subprocess.Popen[bytes], str]] = []
    bases: list[str] = []  # where the workers send requests: the running servers
    lock = threading.Lock()

    def start(count: int) -> None:
        launched = []
        for _ in range(count):
            log = tmp_path / f"serve-{len(processes)}.log"
            process, base = launch_serve(url, key, log)
            processes.append(process)
            launched.append((process, base, log))
        for process, base, log in launched:
            wait_healthy(process, base, log)
            running.append((process, base))
            with lock:
                bases.append(base)

    def kill_oldest() -> None:
        process, base = running.pop(0)
        process.send_signal(signal.SIGKILL)
        with lock:
            bases.remove(base)

    stop = threading.Event()
    stats: Counter[str] = Counter()

    def note(outcome: str) -> None:
        with lock:
            stats[outcome] += 1

    def work(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[tuple[Resource, str]] = []
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(headers=auth, timeout=5) as client:
            while not stop.is_set():
                with lock:
                    base = rng.choice(bases) if bases else None
                if base is None:
                    time.sleep(0.01)
                    continue
                try:
                    if mine and rng.random() < 0.4:
                        resource, object_id = mine.pop(rng.randrange(len(mine)))
                        response = client.delete(f"{base}{resource.path}/{object_id}")
                        note(f"delete {response.status_code}")
                    else:
                        resource = rng.choice(RESOURCES)
                        response = client.post(base + resource.path, json=valid_body(resource))
                        note(f"create {response.status_code}")
                        if response.status_code == 201:
                            mine.append((resource, response.json()["id"]))
                except httpx.TransportError:
                    note("transport error")
                    time.sleep(0.005)

    def wait_for_writes(count: int) -> None:
        target = stats["create 201"] + stats["delete 200"] + count
        deadline = time.monotonic() + 10
        while stats["create 201"] + stats["delete 200"] < target:
            assert time.monotonic() < deadline, f"the servers stopped taking writes: {stats}"
            time.sleep(0.01)

    start(2)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    try:
        for kills in range(4):
            wait_for_writes(80)
            kill_oldest()
            if kills < 2:
                start(1)  # while the other server carries the load
            if kills < 3:
                wait_for_writes(1)  # the survivor answers
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert [p.wait(timeout=15) for p in processes] == [-signal.SIGKILL] * 4
    assert stats["delete 200"] >= 40, stats
    assert stats["transport error"] > 0, "the kills must land while requests are in flight"

    account = account_id(url, "default")
    for resource in RESOURCES:
        count, counter = count_and_counter(url, resource, account, False)
        assert count == counter, (resource.name, count, counter, stats)
        assert table_count_and_counter(url, resource) == (count, count)

    # A new server on the crashed database: exact totals, and it keeps counting right.
    app = OverplaneApp(Settings(database_url=url, access_log=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        caller = Caller(client, key, "default")
        for resource in RESOURCES:
            count, _ = count_and_counter(url, resource, account, False)
            assert total(caller, resource) == total(caller, resource, **MATCH_ALL) == count
            assert caller.post(resource.path, json=valid_body(resource)).status_code == 201
            assert total(caller, resource) == count + 1
            assert count_and_counter(url, resource, account, False) == (count + 1, count + 1)


# --------------------------------------------------------------------------------------------
# Migration 0002 on a database with rows


OLD_ROWS: list[tuple[Resource, str, bool, str | None]] = [
    # resource, account, livemode, scheduled_time
    (APPOINTMENT, "acct_old_one", False, "2024-01-15T10:00:00+01:00"),
    (APPOINTMENT, "acct_old_one", False, "scheduled_time_example"),
    (APPOINTMENT, "acct_old_one", False, "2024-02-30T00:00:00Z"),
    (APPOINTMENT, "acct_old_one", True, "2024-01-15T09:00:00.123456Z"),
    (APPOINTMENT, "acct_old_two", False, "1999-12-31T23:00:00-01:00"),
    (APPOINTMENT, "acct_old_two", False, "2024-01-15T09:00:00Z"),
    (PARTY_LINK, "acct_old_one", False, None),
    (PARTY_LINK, "acct_old_one", False, None),
    (PARTY_LINK, "acct_old_two", True, None),
]

#: The normalised copy each scheduled_time above must get: epoch microseconds, or None.
OLD_SCHEDULED_US: dict[str, int | None] = {
    "2024-01-15T10:00:00+01:00": 1_705_309_200_000_000,
    "scheduled_time_example": None,
    "2024-02-30T00:00:00Z": None,
    "2024-01-15T09:00:00.123456Z": 1_705_309_200_123_456,
    "1999-12-31T23:00:00-01:00": 946_684_800_000_000,
    "2024-01-15T09:00:00Z": 1_705_309_200_000_000,
}


def insert_old_rows(database_url: str) -> list[str]:
    """Accounts and objects written with plain SQL at revision 0001; the ids, oldest first."""
    made: list[str] = []

    def work(connection: sa.Connection) -> None:
        for number, name in enumerate(("acct_old_one", "acct_old_two")):
            connection.execute(
                sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :name, 0)"),
                {"id": name, "name": f"old-{number}-{name}"},
            )
        for index, (resource, account, livemode, scheduled) in enumerate(OLD_ROWS):
            object_id = resource.id_prefix + secrets.token_hex(12)
            values: dict[str, Any] = {f.name: f.example for f in resource.required_fields}
            if scheduled is not None:
                values["scheduled_time"] = scheduled
            names = ["id", "account_id", "livemode", "created_at", "updated_at", *values]
            connection.execute(
                sa.text(
                    f"INSERT INTO {resource.table_name} ({', '.join(names)}) "
                    f"VALUES ({', '.join(':' + n for n in names)})"
                ),
                {
                    "id": object_id,
                    "account_id": account,
                    "livemode": livemode,
                    "created_at": 1_700_000_000_000 + index,
                    "updated_at": 1_700_000_000_000 + index,
                    **values,
                },
            )
            made.append(object_id)
        connection.commit()

    migrate.run_with_connection(migrate.alembic_url(database_url), work)
    return made


def test_migration_0002_backfills_counters_and_scheduled_times(fresh_database_url: str) -> None:
    """Rows written before 0002 get counted and their parseable scheduled_time normalised; the
    API then gives exact totals, range filters and cursors over them, and keeps counting."""
    url = fresh_database_url
    config = migrate.alembic_config(url)
    command.upgrade(config, "0001")
    made = insert_old_rows(url)
    command.upgrade(config, "head")

    for resource in RESOURCES:
        for account in ("acct_old_one", "acct_old_two"):
            for livemode in (False, True):
                expected = sum(
                    1 for r, a, live, _ in OLD_ROWS if (r, a, live) == (resource, account, livemode)
                )
                assert count_and_counter(url, resource, account, livemode) == (expected, expected)
    for object_id, (resource, _, _, scheduled) in zip(made, OLD_ROWS, strict=True):
        if resource is APPOINTMENT:
            assert scheduled is not None
            row = fetch_row(
                url, "SELECT scheduled_time__us FROM crm_appointment WHERE id = ?", object_id
            )
            assert row[0] == OLD_SCHEDULED_US[scheduled], scheduled

    app = OverplaneApp(Settings(database_url=url, access_log=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        server = Server(app=app, client=client, database_url=url)
        old_one = server.new_caller("test", "old-0-acct_old_one")
        old_two = server.new_caller("test", "old-1-acct_old_two")
        appointments = [
            i
            for i, row in zip(made, OLD_ROWS, strict=True)
            if row[:3] == (APPOINTMENT, "acct_old_one", False)
        ]
        listed = old_one.get(APPOINTMENT.path).json()
        assert ([o["id"] for o in listed["data"]], listed["total"]) == (
            appointments[::-1],
            3,
        )
        nine = {
            "scheduled_time[gte]": "2024-01-15T09:00:00Z",
            "scheduled_time[lte]": "2024-01-15T09:00:00Z",
        }
        found = old_one.get(APPOINTMENT.path, params=nine).json()
        assert [o["id"] for o in found["data"]] == [appointments[0]]
        assert found["data"][0]["scheduled_time"] == "2024-01-15T10:00:00+01:00"
        # 1999-12-31T23:00:00-01:00 is midnight UTC, not an hour before it.
        midnight = "2000-01-01T00:00:00Z"
        assert total(old_two, APPOINTMENT, **{"scheduled_time[lte]": midnight}) == 1
        assert total(old_two, APPOINTMENT, **{"scheduled_time[lt]": midnight}) == 0

        # Triggers take over from the backfill without counting anything twice.
        assert old_one.post(APPOINTMENT.path, json=valid_body(APPOINTMENT)).status_code == 201
        assert old_one.delete(f"{APPOINTMENT.path}/{appointments[1]}").status_code == 200
        assert total(old_one, APPOINTMENT) == 3
        assert count_and_counter(url, APPOINTMENT, "acct_old_one", False) == (3, 3)
        after = old_one.get(APPOINTMENT.path, params={"starting_after": appointments[1]}).json()
        assert [o["id"] for o in after["data"]] == [appointments[0]]
        assert total(old_one, PARTY_LINK) == 2
