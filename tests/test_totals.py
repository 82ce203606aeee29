"""Exact list totals: the counters behind unfiltered totals never drift from a real count.

Covers: random concurrent creates and deletes through two application instances on one
database (as two processes would), in both modes and with a second account and the other
resource writing alongside; a total exact after every single write; and counters that move
inside the transaction of each write, whoever writes. Every check compares with a ``count(*)``
run directly on the database, never with what the server says about itself.

Counters after SIGKILLs of real server processes are in ``test_crashes.py``; migration 0002's
backfill of the counters is in ``test_migrations.py``.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from overplane.storage.database import is_postgres
from overplane.storage.listing import sqlite_next_seq
from tests.helpers import (
    MATCH_ALL,
    Caller,
    Server,
    account_id,
    count_and_counter,
    in_process,
    sql_transaction,
    valid_body,
)

MODES = {"test": False, "live": True}


@pytest.fixture
def second_server(server: Server) -> Iterator[Server]:
    """A second application instance on the same database, as another process would be."""
    with in_process(server.database_url) as second:
        yield second


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
            second_server.caller(server.new_caller(mode, name).key, name),
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
            assert caller.total(resource) == expected
            assert caller.total(resource, **MATCH_ALL) == expected
    assert stranger.total(resource) == stranger.total(resource, **MATCH_ALL)


def test_total_follows_each_create_and_delete(server: Server, second_server: Server) -> None:
    """Step by step, alternating between two app instances: the total is exact after every
    write, including a delete of an id that is already gone (which must not count twice)."""
    first = server.new_caller()
    second = second_server.caller(first.key, first.account_name)
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
        assert first.total(PARTY_LINK) == second.total(PARTY_LINK) == len(made)
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

    made = [api.create(APPOINTMENT)["id"] for _ in range(2)]
    ghost = APPOINTMENT.id_prefix + secrets.token_hex(12)
    sql_transaction(server.database_url, [(insert, row(ghost))], commit=False)
    assert api.total(APPOINTMENT) == 2
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (2, 2)

    direct = [APPOINTMENT.id_prefix + secrets.token_hex(12) for _ in range(2)]
    sql_transaction(server.database_url, [(insert, row(i)) for i in direct], commit=True)
    assert api.total(APPOINTMENT) == 4
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (4, 4)

    sql_transaction(server.database_url, [(delete, (made[0],))], commit=False)
    assert api.total(APPOINTMENT) == 4
    sql_transaction(
        server.database_url, [(delete, (made[0],)), (delete, (direct[0],))], commit=True
    )
    assert api.total(APPOINTMENT) == 2
    assert count_and_counter(server.database_url, APPOINTMENT, account, False) == (2, 2)
    page = api.get(APPOINTMENT.path, params={"ending_before": made[0]}).json()
    assert [o["id"] for o in page["data"]] == [direct[1], made[1]]
