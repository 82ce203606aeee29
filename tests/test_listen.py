"""``overplane worker`` and ``overplane listen`` as real processes, against real servers and a
real receiver on 127.0.0.1.

- ``worker`` migrates, runs the delivery worker, logs nothing alarming and exits 0 on SIGTERM;
  it delivers what ``serve`` processes without a worker leave to it.
- ``listen`` forwards every new event once, in order, with the API's bytes and a signature
  that verifies with the secret it printed; it does not replay old events; ``--events``
  filters; SIGINT exits 0. Its follower picks up an event that became visible behind one
  already forwarded (a write that committed late), once.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from overplane.auth import keys
from overplane.cli.listen import Follower, Seen, created_at_ms
from overplane.clock import now_ms
from overplane.settings import Settings
from overplane.storage.database import open_database
from overplane.storage.webhooks import EndpointStore
from overplane.webhooks import SIGNATURE_HEADER, verify
from tests.helpers import OVERPLANE, Receiver, ServerLauncher

APPOINTMENT = "/api/crm/appointment"
BODY = {"customer_name": "a", "scheduled_time": "b", "status": "draft", "customer_email": "c"}
#: Log words that mean something went wrong.
ALARMING = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|Exception", re.IGNORECASE)


@dataclass
class Process:
    """A command of ours running in a session of its own, its output going to files."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until standard error matches ``pattern``; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.stderr())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode}: {self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s: {self.stderr()}")

    def stop(self, signum: int, timeout: float = 10) -> int:
        """Send ``signum`` and return the exit status (failing if it takes over ``timeout``)."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"did not exit within {timeout} s of signal {signum}") from None


class Launch(Protocol):
    """Starts ``overplane <args>`` with extra environment variables."""

    def __call__(self, *args: str, **env: str) -> Process: ...


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Starts ``overplane <args>`` processes; kills whatever is left at the end."""
    started: list[Process] = []

    def start(*args: str, **env: str) -> Process:
        name = f"{args[0]}-{len(started)}"
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*OVERPLANE, *args],
                env={**os.environ, **env},
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        started.append(Process(process, out, err))
        return started[-1]

    yield start
    for each in started:
        if each.process.poll() is None:
            os.killpg(each.process.pid, signal.SIGKILL)
            each.process.wait()


@pytest.mark.slow
def test_worker_runs_until_sigterm_and_exits_0(fresh_database_url: str, launch: Launch) -> None:
    """``overplane worker`` on a fresh database: migrates, starts, stops cleanly on SIGTERM."""
    worker = launch(
        "worker", OVERPLANE_DATABASE_URL=fresh_database_url, OVERPLANE_WEBHOOK_POLL_SECONDS="0.1"
    )
    worker.wait_for("webhook worker started")
    time.sleep(1)  # a few idle polls of the deliveries table
    assert worker.process.poll() is None
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    log = worker.stderr()
    assert "webhook worker stopped" in log
    assert not ALARMING.search(log), log


@pytest.mark.slow
def test_worker_exits_0_on_sigint(tmp_sqlite_url: str, launch: Launch) -> None:
    """Ctrl-C (SIGINT) stops it the same way."""
    worker = launch("worker", OVERPLANE_DATABASE_URL=tmp_sqlite_url)
    worker.wait_for("webhook worker started")
    assert worker.stop(signal.SIGINT) == 0
    assert not ALARMING.search(worker.stderr()), worker.stderr()


async def add_endpoint(database_url: str, key: str, url: str, secret: str) -> None:
    """A webhook endpoint of ``key``'s account, written through storage (the endpoints'
    HTTP API is not part of this test)."""
    db = await open_database(Settings(database_url=database_url))
    try:
        principal = await keys.authenticate(db, key)
        assert principal is not None
        await EndpointStore().create(
            db,
            principal.tenant,
            url=url,
            description=None,
            enabled_events=["*"],
            secret=secret,
            now_ms=now_ms(),
        )
    finally:
        await db.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording receiver on 127.0.0.1 for the test."""
    found = Receiver()
    yield found
    found.close()


def wait_for(receiver: Receiver, count: int) -> None:
    """Wait (bounded) for ``count`` requests, and fail if they do not come."""
    receiver.wait_for(count, 30)
    assert len(receiver.received) >= count, f"{len(receiver.received)} of {count} arrived"


def events_since(client: httpx.Client, known: set[str]) -> list[str]:
    """The ids of the account's events not in ``known``, oldest first."""
    page = client.get("/api/events", params={"limit": 100}).json()
    assert not page["has_more"]
    return [e["id"] for e in reversed(page["data"]) if e["id"] not in known]


@pytest.mark.slow
def test_listen_forwards_each_new_event_once_in_order_signed(
    fresh_database_url: str, start_server: ServerLauncher, receiver: Receiver, launch: Launch
) -> None:
    """Creates, updates and a delete through the API reach the receiver once each, in list
    order, as the API's bytes, with a signature that verifies with the printed secret."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(fresh_database_url, OVERPLANE_BOOTSTRAP_KEY=key)
    client = server.client(key)
    old = client.post(APPOINTMENT, json=BODY)  # before listen: must not be forwarded
    assert old.status_code == 201
    known = set(events_since(client, set()))
    assert len(known) == 1

    env = {"OVERPLANE_API_KEY": key, "OVERPLANE_BASE_URL": server.base_url}
    listener = launch("listen", "--forward-to", receiver.url, "--interval", "0.2", **env)
    filtered = launch(
        "listen",
        *("--forward-to", receiver.url.replace("/hooks", "/updated")),
        *("--events", "appointment.updated", "--interval", "0.2"),
        **env,
    )
    secret = listener.wait_for(r"Ready! Your webhook signing secret is (whsec_\S+)").group(1)
    filtered.wait_for("Ready!")

    ids = [client.post(APPOINTMENT, json=BODY).json()["id"] for _ in range(3)]
    for status in ("confirmed", "cancelled"):
        assert client.patch(f"{APPOINTMENT}/{ids[0]}", json={"status": status}).is_success
    assert client.delete(f"{APPOINTMENT}/{ids[1]}").is_success
    assert client.patch(
        f"{APPOINTMENT}/{old.json()['id']}", json={"status": "confirmed"}
    ).is_success
    expected = events_since(client, known)
    assert len(expected) == 7

    updates = 3
    wait_for(receiver, len(expected) + updates)
    time.sleep(1.5)  # a few more polls: nothing may arrive twice
    hooks = [r for r in receiver.received if r.path == "/hooks"]
    assert [r for r in receiver.received if r.path not in {"/hooks", "/updated"}] == []
    forwarded = []
    for body, _, _, headers in hooks:
        verify(body, headers[SIGNATURE_HEADER], secret)
        assert headers["Content-Type"] == "application/json"
        assert "Authorization" not in headers  # the API key stays with the API
        event_id = httpx.Response(200, content=body).json()["id"]
        assert body == client.get(f"/api/events/{event_id}").content
        forwarded.append(event_id)
    assert forwarded == expected

    updated = [r for r in receiver.received if r.path == "/updated"]
    types = [httpx.Response(200, content=r.body).json()["type"] for r in updated]
    assert types == ["appointment.updated"] * updates

    assert listener.stop(signal.SIGINT) == 0
    assert filtered.stop(signal.SIGTERM) == 0
    lines = listener.stdout().splitlines()
    assert len(lines) == len(expected)
    for line, event_id in zip(lines, expected, strict=True):
        assert event_id in line
        assert "[200]" in line
        assert "appointment." in line
    assert listener.stderr().count("whsec_") == 1
    assert not ALARMING.search(listener.stderr()), listener.stderr()


@pytest.mark.slow
def test_listen_from_start_replays_and_bad_keys_fail(
    tmp_sqlite_url: str, start_server: ServerLauncher, receiver: Receiver, launch: Launch
) -> None:
    """``--from-start`` forwards the events that already existed; a wrong key exits 1.
    SQLite only: nothing here depends on the backend."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(tmp_sqlite_url, OVERPLANE_BOOTSTRAP_KEY=key)
    client = server.client(key)
    for _ in range(3):
        assert client.post(APPOINTMENT, json=BODY).status_code == 201
    expected = events_since(client, set())

    env = {"OVERPLANE_BASE_URL": server.base_url}
    refused = launch("listen", "--forward-to", receiver.url, "--api-key", "sk_test_wrong", **env)
    assert refused.process.wait(timeout=30) == 1
    assert "the API refused the key" in refused.stderr()

    listener = launch(
        "listen", "--forward-to", receiver.url, "--from-start", "--interval", "0.2",
        OVERPLANE_API_KEY=key, **env,
    )  # fmt: skip
    listener.wait_for("Ready!")
    wait_for(receiver, len(expected))
    forwarded = [httpx.Response(200, content=b).json()["id"] for b, *_ in receiver.received]
    assert forwarded == expected
    assert listener.stop(signal.SIGINT) == 0


@pytest.mark.slow
def test_the_follower_catches_an_event_that_appears_behind_a_forwarded_one(
    tmp_sqlite_url: str, start_server: ServerLauncher
) -> None:
    """A late commit, replayed against the real API: the follower has forwarded C but not B
    (B's write committed after C was read), B lies between its anchor A and C in list order.
    The next poll handles B, once; the anchor then moves on and new events still arrive.
    SQLite only: the follower sees the API, not the backend."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(tmp_sqlite_url, OVERPLANE_BOOTSTRAP_KEY=key)
    client = server.client(key)
    for _ in range(3):
        assert client.post(APPOINTMENT, json=BODY).status_code == 201
    a, b, c = reversed(client.get("/api/events").json()["data"])

    follower = Follower(client, type_filter=None)
    now = time.monotonic()
    follower.window = [Seen(e["id"], created_at_ms(e), now) for e in (a, c)]
    handled: list[str] = []
    follower.poll(lambda event: handled.append(event["id"]))
    assert handled == [b["id"]]
    follower.poll(lambda event: handled.append(event["id"]))
    assert handled == [b["id"]]
    assert [seen.id for seen in follower.window] == [a["id"], b["id"], c["id"]]

    follower.lookback_seconds = 0  # everything has been seen long enough: the anchor moves
    follower.poll(lambda event: handled.append(event["id"]))
    assert [seen.id for seen in follower.window] == [c["id"]]
    assert client.post(APPOINTMENT, json=BODY).status_code == 201
    follower.poll(lambda event: handled.append(event["id"]))
    newest = client.get("/api/events", params={"limit": 1}).json()["data"][0]["id"]
    assert handled == [b["id"], newest]


@pytest.mark.slow
def test_the_follower_retries_what_it_could_not_handle(
    tmp_sqlite_url: str, start_server: ServerLauncher
) -> None:
    """An event whose handling failed (the API went away while it was fetched) is new again
    at the next poll, and the ones handled before it are not. SQLite only, as above."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(tmp_sqlite_url, OVERPLANE_BOOTSTRAP_KEY=key)
    client = server.client(key)
    follower = Follower(client, type_filter=None)
    follower.start(from_start=False)
    assert follower.window == []  # no events yet
    for _ in range(3):
        assert client.post(APPOINTMENT, json=BODY).status_code == 201
    expected = events_since(client, set())
    handled: list[str] = []

    def fail_on_second(event: dict[str, str]) -> None:
        if len(handled) == 1:
            raise RuntimeError("the API went away")
        handled.append(event["id"])

    with pytest.raises(RuntimeError):
        follower.poll(fail_on_second)
    assert handled == expected[:1]
    follower.poll(lambda event: handled.append(event["id"]))
    assert handled == expected


@pytest.mark.slow
def test_worker_delivers_what_serve_leaves_to_it(
    fresh_database_url: str, start_server: ServerLauncher, receiver: Receiver, launch: Launch
) -> None:
    """``serve`` with ``OVERPLANE_WEBHOOK_WORKER=false`` records deliveries; a separate
    ``overplane worker`` sends them, signed with the endpoint's secret."""
    key = "sk_test_" + secrets.token_hex(16)
    server = start_server(
        fresh_database_url, OVERPLANE_BOOTSTRAP_KEY=key, OVERPLANE_WEBHOOK_WORKER="false"
    )
    secret = "whsec_" + secrets.token_hex(16)
    asyncio.run(add_endpoint(fresh_database_url, key, receiver.url, secret))
    client = server.client(key)
    for _ in range(2):
        assert client.post(APPOINTMENT, json=BODY).status_code == 201
    time.sleep(1)
    assert receiver.received == []  # nobody sends them yet

    worker = launch(
        "worker",
        OVERPLANE_DATABASE_URL=fresh_database_url,
        OVERPLANE_WEBHOOK_ALLOW_PRIVATE="true",
        OVERPLANE_WEBHOOK_POLL_SECONDS="0.1",
    )
    wait_for(receiver, 2)
    for body, _, _, headers in receiver.received:
        verify(body, headers[SIGNATURE_HEADER], secret)
    delivered = {httpx.Response(200, content=b).json()["id"] for b, *_ in receiver.received}
    assert delivered == set(events_since(client, set()))
    assert worker.stop(signal.SIGTERM) == 0
    assert not ALARMING.search(worker.stderr()), worker.stderr()
