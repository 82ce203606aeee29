"""Deliveries across real ``overplane serve`` processes: a SIGKILL mid-delivery loses no
event, and two processes on one database share a burst without sending much twice.

Figures (duplicates) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import collections
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from overplane.declarations import APPOINTMENT
from overplane.storage.database import is_postgres
from tests.helpers import Receiver, RunningServer, ServerLauncher, prepare_database, valid_body

pytestmark = pytest.mark.slow

#: Fast deliveries: poll often, a 1 s timeout (so a dead worker's lease lapses in 3.5 s).
FAST = {
    "OVERPLANE_ACCESS_LOG": "false",
    "OVERPLANE_WEBHOOK_ALLOW_PRIVATE": "true",
    "OVERPLANE_WEBHOOK_POLL_SECONDS": "0.05",
    "OVERPLANE_WEBHOOK_TIMEOUT_SECONDS": "1",
    "OVERPLANE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
}


def serve(start_server: ServerLauncher, url: str, key: str) -> RunningServer:
    return start_server(url, "--no-migrate", OVERPLANE_BOOTSTRAP_KEY=key, **FAST)


def event_ids(client: httpx.Client) -> set[str]:
    """Every event of the key's account, through the API."""
    found: set[str] = set()
    cursor: dict[str, str] = {}
    while True:
        page = client.get("/api/events", params={"limit": "100", **cursor}).json()
        found |= {e["id"] for e in page["data"]}
        if not page["has_more"]:
            return found
        cursor = {"starting_after": page["data"][-1]["id"]}


def wait_until_received(receiver: Receiver, wanted: set[str], seconds: float) -> set[str]:
    deadline = time.monotonic() + seconds
    got: set[str] = set()
    while time.monotonic() < deadline:
        got = {e["id"] for e in receiver.events()}
        if wanted <= got:
            break
        time.sleep(0.05)
    return got


def test_sigkill_during_deliveries_loses_no_event(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    key = "sk_test_" + secrets.token_hex(16)
    prepare_database(fresh_database_url, key)
    receiver = Receiver(delay_seconds=0.2)  # slow: deliveries are in flight when killed
    try:
        first = serve(start_server, fresh_database_url, key)
        with first.client(key) as client:
            endpoint = {"url": receiver.url, "enabled_events": ["*"]}
            assert client.post("/api/webhook-endpoints", json=endpoint).status_code == 201
            for _ in range(40):
                created = client.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
                assert created.status_code == 201
            wanted = event_ids(client)
        receiver.wait_for(5)
        first.kill()
        before_restart = len(receiver.received)
        second = serve(start_server, fresh_database_url, key)
        got = wait_until_received(receiver, wanted, 60)
        second.stop()
    finally:
        receiver.close()
    assert wanted <= got, f"{len(wanted - got)} events never arrived"
    counts = collections.Counter(e["id"] for e in receiver.events())
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\n[{'postgres' if is_postgres(fresh_database_url) else 'sqlite'}] SIGKILL after "
        f"{before_restart} of {len(wanted)} deliveries: all delivered, {duplicates} twice"
    )


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
def test_two_processes_deliver_a_burst_of_a_thousand_events(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """PostgreSQL: the path past one machine (SQLite's processes share the work the same way,
    one writer at a time, which the SIGKILL test exercises)."""
    key = "sk_test_" + secrets.token_hex(16)
    prepare_database(fresh_database_url, key)
    receiver = Receiver()
    try:
        servers = [serve(start_server, fresh_database_url, key) for _ in range(2)]
        clients = [s.client(key) for s in servers]
        endpoint = {"url": receiver.url, "enabled_events": ["appointment.created"]}
        assert clients[0].post("/api/webhook-endpoints", json=endpoint).status_code == 201

        def create(number: int) -> int:
            response = clients[number % 2].post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
            return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            assert set(pool.map(create, range(1000))) == {201}
        wanted = event_ids(clients[0])
        assert len(wanted) == 1000
        got = wait_until_received(receiver, wanted, 120)
        for client in clients:
            client.close()
    finally:
        receiver.close()
    assert wanted <= got, f"{len(wanted - got)} events never arrived"
    counts = collections.Counter(json.loads(r.body)["id"] for r in receiver.received)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\n[postgres] two processes, 1,000 events: {duplicates} delivered twice")
    assert duplicates <= 10
