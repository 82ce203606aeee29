"""Crashes, shutdowns and outages of a real ``overplane serve``.

- SIGKILL under a write load, then a restart on the same database (both backends): every
  write that got a 2xx is there exactly as acknowledged, nothing is half-written, and the list
  total counts exactly the objects that exist (docs/deployment.md, "Durability").
- Servers, two at a time, killed with SIGKILL four times under concurrent creates and deletes:
  the counters behind the totals still equal a real ``count(*)`` (read directly from the
  database), and a new server reports exact totals and keeps counting right.
- SIGTERM drains a request in flight: it completes, then the server exits 0 and no longer
  listens (docs/deployment.md, "Outages and shutdown").
- The database goes away or stops answering (a private PostgreSQL cluster that the tests
  start, stop and freeze, never the shared one): requests get ``503 unavailable`` with
  ``Retry-After`` promptly, never a 500 or a hang, ``/readyz`` is 503, and the server recovers
  by itself when the database is back. ``serve`` started while the database is down exits 1
  with a clear message (it migrates first).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from overplane.declarations import RESOURCES, Resource
from tests.helpers import (
    MATCH_ALL,
    RunningServer,
    ServerLauncher,
    account_id,
    assert_clean_failure,
    count_and_counter,
    field_pair,
    free_port,
    in_process,
    is_listening,
    new_api_key,
    prepare_database,
    run_cli,
    sql,
    table_count_and_counter,
    valid_body,
)

#: Every test here kills, stops or starves real ``overplane serve`` processes.
pytestmark = pytest.mark.slow

WRITERS_PER_RESOURCE = 3
#: Acknowledged writes to wait for before the kill, and the most operations one writer sends.
WRITES_BEFORE_KILL = 300
MAX_OPERATIONS = 3000
SLOW_BODY_SECONDS = 2.0
#: The longest any response may take while the database is down (its timeout is 2 s).
OUTAGE_RESPONSE_SECONDS = 3.5
RECOVERY_SECONDS = 15.0


# --- SIGKILL under load ----------------------------------------------------------------------


@dataclass
class WriterLog:
    """What one writer was told: acknowledged values, and writes that got no response."""

    resource: Resource
    #: object id -> the value its last acknowledged write set (create or update)
    acknowledged: dict[str, str] = field(default_factory=dict)
    #: object id -> the value of an update that was sent but got no response
    in_flight: dict[str, str] = field(default_factory=dict)
    #: values of creates that were sent but got no response
    creates_in_flight: list[str] = field(default_factory=list)
    acknowledged_writes: int = 0
    unexpected: list[str] = field(default_factory=list)
    ended_by_crash: bool = False


def write_load(client: httpx.Client, log: WriterLog, name: str) -> None:
    """Create objects and update them (every fourth write a create), each write setting both
    fields of the pair to a new value, until the server stops answering."""
    resource = log.resource
    first, second = field_pair(resource)
    ids: list[str] = []
    for operation in range(MAX_OPERATIONS):
        value = f"{name}-{operation}"
        pair = {first: value, second: value}
        if operation % 4 == 0:
            try:
                response = client.post(resource.path, json={**valid_body(resource), **pair})
            except httpx.TransportError:
                log.creates_in_flight.append(value)
                log.ended_by_crash = True
                return
            if response.status_code != 201:
                log.unexpected.append(response.text)
                return
            object_id = response.json()["id"]
            ids.append(object_id)
        else:
            object_id = ids[operation % len(ids)]
            log.in_flight[object_id] = value
            try:
                response = client.patch(f"{resource.path}/{object_id}", json=pair)
            except httpx.TransportError:
                log.ended_by_crash = True
                return
            del log.in_flight[object_id]
            if response.status_code != 200:
                log.unexpected.append(response.text)
                return
        if (response.json()[first], response.json()[second]) != (value, value):
            log.unexpected.append(response.text)
            return
        log.acknowledged[object_id] = value
        log.acknowledged_writes += 1


def list_everything(client: httpx.Client, resource: Resource) -> tuple[list[dict[str, str]], int]:
    """Every object of the caller, page by page, and the total the first page reported."""
    objects: list[dict[str, str]] = []
    params: dict[str, str | int] = {"limit": 100}
    first_total = None
    while True:
        page = client.get(resource.path, params=params)
        assert page.status_code == 200, page.text
        listed = page.json()
        first_total = listed["total"] if first_total is None else first_total
        objects += listed["data"]
        if not listed["has_more"]:
            return objects, first_total
        params["starting_after"] = listed["data"][-1]["id"]


def test_sigkill_under_load_loses_no_acknowledged_write(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """Writers create and update objects; the server is killed with SIGKILL mid-load and
    restarted on the same database. Every write that got a 2xx is there exactly as
    acknowledged (an object whose last update got no response holds either value), both
    fields of every object are equal (nothing half-written), and the total equals the objects
    created with a 2xx plus at most the creates that got no response."""
    server, key = start_server.with_new_key(fresh_database_url)
    logs = [WriterLog(resource) for resource in RESOURCES for _ in range(WRITERS_PER_RESOURCE)]
    clients = [server.client(key, timeout=10) for _ in logs]
    try:
        with ThreadPoolExecutor(len(logs)) as pool:
            futures = [
                pool.submit(write_load, client, log, f"w{number}")
                for number, (client, log) in enumerate(zip(clients, logs, strict=True))
            ]
            deadline = time.monotonic() + 60
            try:
                while sum(log.acknowledged_writes for log in logs) < WRITES_BEFORE_KILL:
                    assert time.monotonic() < deadline, "the load did not get going"
                    assert not any(future.done() for future in futures), [
                        log.unexpected for log in logs
                    ]
                    time.sleep(0.01)
            finally:
                server.kill()  # mid-load (and, should the wait fail, so that the writers stop)
            for future in futures:
                future.result()
    finally:
        for client in clients:
            client.close()
    assert [log.unexpected for log in logs] == [[]] * len(logs)
    assert all(log.ended_by_crash for log in logs), "every writer was mid-load at the kill"

    restarted = start_server(fresh_database_url, OVERPLANE_BOOTSTRAP_KEY=key)
    with restarted.client(key) as client:
        for resource in RESOURCES:
            first, second = field_pair(resource)
            mine = [log for log in logs if log.resource is resource]
            objects, total = list_everything(client, resource)
            by_id = {o["id"]: o for o in objects}
            assert len(by_id) == len(objects) == total
            for o in objects:
                assert o[first] == o[second], f"half-written: {o}"
            for log in mine:
                for object_id, value in log.acknowledged.items():
                    assert object_id in by_id, f"acknowledged create lost: {object_id}"
                    allowed = {value, log.in_flight.get(object_id, value)}
                    assert by_id[object_id][first] in allowed, (by_id[object_id], allowed)
                    fetched = client.get(f"{resource.path}/{object_id}")
                    assert fetched.json() == by_id[object_id]
            acknowledged = {i for log in mine for i in log.acknowledged}
            unacknowledged = [by_id[i][first] for i in by_id.keys() - acknowledged]
            creates_in_flight = [v for log in mine for v in log.creates_in_flight]
            assert all(value in creates_in_flight for value in unacknowledged), unacknowledged
            assert len(acknowledged) <= total <= len(acknowledged) + len(creates_in_flight)


def test_counters_survive_sigkill_mid_load(
    fresh_database_url: str, start_server: ServerLauncher
) -> None:
    """``overplane serve`` processes (two at a time) take concurrent creates and deletes and
    are killed with SIGKILL, one after another, while requests are in flight; the counters
    still equal a real count(*), and a new server afterwards reports exact totals and keeps
    counting right.

    Four kills rather than one: a counter kept outside the write's transaction drifts only
    when a kill lands between the two, so each kill is another chance to catch it.
    """
    url = fresh_database_url
    key = new_api_key()
    # Migrate and register the key first, so that two servers can start side by side.
    prepare_database(url, key)

    running: list[RunningServer] = []
    bases: list[str] = []  # where the workers send requests: the running servers
    lock = threading.Lock()

    def start(count: int) -> None:
        launched = [
            start_server.launch(url, OVERPLANE_BOOTSTRAP_KEY=key, OVERPLANE_ACCESS_LOG="false")
            for _ in range(count)
        ]
        for server in launched:
            server.wait_ready()
            running.append(server)
            with lock:
                bases.append(server.base_url)

    def kill_oldest() -> None:
        server = running.pop(0)
        server.kill()
        with lock:
            bases.remove(server.base_url)

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
    assert [s.process.wait(timeout=15) for s in start_server.started] == [-signal.SIGKILL] * 4
    assert stats["delete 200"] >= 40, stats
    assert stats["transport error"] > 0, "the kills must land while requests are in flight"

    account = account_id(url, "default")
    for resource in RESOURCES:
        count, counter = count_and_counter(url, resource, account, False)
        assert count == counter, (resource.name, count, counter, stats)
        assert table_count_and_counter(url, resource) == (count, count)

    # A new server on the crashed database: exact totals, and it keeps counting right.
    with in_process(url) as restarted:
        caller = restarted.caller(key, "default")
        for resource in RESOURCES:
            count, _ = count_and_counter(url, resource, account, False)
            assert caller.total(resource) == caller.total(resource, **MATCH_ALL) == count
            assert caller.post(resource.path, json=valid_body(resource)).status_code == 201
            assert caller.total(resource) == count + 1
            assert count_and_counter(url, resource, account, False) == (count + 1, count + 1)


# --- SIGTERM -------------------------------------------------------------------------------


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
def test_sigterm_drains_the_request_in_flight(
    fresh_database_url: str, start_server: ServerLauncher, http_server: str
) -> None:
    """SIGTERM while a request's body is still arriving: the server stops accepting new
    connections, lets that request finish (201), then exits with status 0 and no longer
    listens; on either HTTP server ``serve`` offers."""
    server, key = start_server.with_new_key(fresh_database_url, "--http-server", http_server)
    resource = RESOURCES[-1]
    body = json.dumps(valid_body(resource)).encode()
    chunks = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
    started = threading.Event()

    def slowly() -> Iterator[bytes]:
        for number, chunk in enumerate(chunks):
            if number:
                time.sleep(SLOW_BODY_SECONDS / (len(chunks) - 1))
            yield chunk
            started.set()

    with server.client(key) as client, ThreadPoolExecutor(1) as pool:
        headers = {"Content-Type": "application/json"}
        future = pool.submit(client.post, resource.path, content=slowly(), headers=headers)
        assert started.wait(10)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert not future.done(), "the request was still in flight at SIGTERM"
        assert not is_listening(server.port), "no new connections after SIGTERM"
        response = future.result(timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["id"].startswith(resource.id_prefix)
    assert server.process.wait(timeout=30) == 0, server.log()
    assert not is_listening(server.port)


# --- The database goes away ----------------------------------------------------------------


def postgres_binaries() -> Path:
    """The directory of the newest installed PostgreSQL's initdb and pg_ctl."""
    installed = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    found = sorted(installed, key=lambda path: int(re.sub(r"\D", "", path.parent.parent.name)))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    assert initdb, "these tests need PostgreSQL's server binaries (initdb, pg_ctl)"
    return Path(initdb).parent


class PrivateCluster:
    """A PostgreSQL cluster of the test's own, in a temporary directory, on a free port.

    PostgreSQL refuses to run as root, so as root its commands run as the postgres user
    (``runuser``) in a directory that user owns.
    """

    def __init__(self) -> None:
        self.binaries = postgres_binaries()
        self.directory = Path(tempfile.mkdtemp(prefix="overplane-pg-"))
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.running = False
        self.command("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def command(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.binaries / program), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        log = self.directory / "log"
        assert done.returncode == 0, (done.stderr, log.read_text() if log.exists() else "")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "log")
        self.command("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        self.running = True

    def stop(self) -> None:
        self.command("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def processes(self) -> list[int]:
        """The postmaster's process id and those of its children."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (command) state ppid ...": the command may hold spaces and parentheses.
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Stop every process of the cluster (SIGSTOP): connections stay open, nothing answers."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster (created once for this module, removed at the end)."""
    private = PrivateCluster()
    try:
        yield private
    finally:
        private.remove()


def timed(
    send: httpx.Client,
    method: str,
    path: str,
    within: float = OUTAGE_RESPONSE_SECONDS,
    **kwargs: object,
) -> httpx.Response:
    """One request, which must be answered ``within`` seconds and not with 500."""
    began = time.monotonic()
    response = send.request(method, path, **kwargs)  # type: ignore[arg-type]
    elapsed = time.monotonic() - began
    assert elapsed < within, f"{method} {path} took {elapsed:.1f} s"
    assert response.status_code != 500, response.text
    return response


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("api_error", "unavailable")
    assert error["request_id"] == response.headers["request-id"]
    assert response.headers["retry-after"].isdigit()


def recovers(client: httpx.Client, path: str) -> httpx.Response:
    """Poll ``path`` until it answers 200 (each answer before then a prompt 503)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while (response := timed(client, "GET", path)).status_code != 200:
        assert_unavailable(response)
        assert time.monotonic() < deadline, "the server did not recover by itself"
        time.sleep(0.2)
    assert timed(client, "GET", "/readyz").status_code == 200
    return response


@pytest.fixture
def outage(
    cluster: PrivateCluster, start_server: ServerLauncher
) -> Iterator[tuple[PrivateCluster, RunningServer, httpx.Client]]:
    """The private cluster running, a server on it (2 s database timeout) and its client."""
    if not cluster.running:
        cluster.start()
    server, key = start_server.with_new_key(cluster.url, OVERPLANE_DB_TIMEOUT_SECONDS="2")
    with server.client(key) as client:
        yield cluster, server, client
    assert server.process.poll() is None, "the same process all along, never restarted"


def test_stopped_database_gives_503_and_the_server_recovers(
    outage: tuple[PrivateCluster, RunningServer, httpx.Client],
) -> None:
    """With the database stopped, every request is a prompt 503 unavailable with Retry-After
    (never a 500, never a hang) and /readyz is 503, while /healthz stays 200; a write refused
    that way stored nothing, so its retry with the same Idempotency-Key runs. Once the
    database is back, the same server process serves again within seconds, data intact."""
    cluster, _, client = outage
    resource = RESOURCES[-1]
    body = valid_body(resource)
    created = timed(client, "POST", resource.path, json=body)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert timed(client, "GET", "/readyz").status_code == 200

    cluster.stop()
    retried = {"Idempotency-Key": secrets.token_hex(8)}
    for _ in range(2):
        for method, path, kwargs in (
            ("GET", resource.path, {}),
            ("GET", location, {}),
            ("POST", resource.path, {"json": body, "headers": retried}),
            ("PATCH", location, {"json": {}}),
            ("DELETE", location, {}),
        ):
            assert_unavailable(timed(client, method, path, **kwargs))
        assert_unavailable(timed(client, "GET", "/readyz"))
    assert timed(client, "GET", "/healthz").status_code == 200

    cluster.start()
    assert recovers(client, resource.path).json()["total"] == 1
    assert timed(client, "GET", location).json() == created.json()
    retry = timed(client, "POST", resource.path, json=body, headers=retried)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") is None


def test_database_that_does_not_answer_gives_503_not_a_hang(
    outage: tuple[PrivateCluster, RunningServer, httpx.Client],
) -> None:
    """With the database frozen (its processes stopped: connections stay open but nothing
    answers), requests still end promptly in 503 unavailable, never a hang; when it resumes,
    the server serves again by itself."""
    cluster, _, client = outage
    resource = RESOURCES[0]
    created = timed(client, "POST", resource.path, json=valid_body(resource))
    assert created.status_code == 201, created.text
    cluster.freeze()
    try:
        for method, path in (("GET", resource.path), ("DELETE", created.headers["location"])):
            assert_unavailable(timed(client, method, path))
        assert_unavailable(timed(client, "GET", "/readyz"))
    finally:
        cluster.thaw()
    assert recovers(client, created.headers["location"]).json() == created.json()


def test_serve_refuses_to_start_while_the_database_is_down(cluster: PrivateCluster) -> None:
    """``overplane serve`` migrates first; with the database down it exits 1 promptly with a
    message naming the problem, not a traceback."""
    if cluster.running:
        cluster.stop()
    began = time.monotonic()
    result = run_cli(cluster.url, "serve", "--port", str(free_port()))
    assert time.monotonic() - began < 30
    assert_clean_failure(result, "cannot migrate")


def test_requests_queued_for_a_frozen_database_all_get_a_prompt_503(
    cluster: PrivateCluster, start_server: ServerLauncher
) -> None:
    """Requests queued behind a one-connection pool while the database does not answer are
    each answered 503 within two database timeouts (at most one waiting for the connection,
    one for the statement), not one timeout per request ahead of them in the queue: a turn
    that came later than the timeout is given up."""
    if not cluster.running:
        cluster.start()
    server, key = start_server.with_new_key(
        cluster.url,
        OVERPLANE_DB_TIMEOUT_SECONDS="2",
        OVERPLANE_PG_POOL_MIN_SIZE="1",
        OVERPLANE_PG_POOL_MAX_SIZE="1",
    )
    resource = RESOURCES[0]
    with server.client(key) as client:
        created = timed(client, "POST", resource.path, json=valid_body(resource))
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        cluster.freeze()
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                clients = [server.client(key) for _ in range(6)]
                answers = list(
                    pool.map(lambda c: timed(c, "GET", location, within=2 * 2 + 1.5), clients)
                )
                for queued in clients:
                    queued.close()
            for answer in answers:
                assert_unavailable(answer)
        finally:
            cluster.thaw()
        assert recovers(client, location).json() == created.json()


# --- The database goes away under load -----------------------------------------------------

OUTAGE_WRITERS = 8
OUTAGE_CYCLES = 3
OUTAGE_DOWN_SECONDS = 3.0
#: The database timeout of the server under load, and the longest any answer may take: one
#: timeout waiting for a connection and one for the statement, plus slack for a loaded machine.
OUTAGE_TIMEOUT = "2"
OUTAGE_ANSWER_SECONDS = 2 * 2 + 2.0


@dataclass
class OutageWriter:
    """What one writer of the outage test was told."""

    statuses: Counter[int] = field(default_factory=Counter)
    #: ids of creates answered 201, with the time of the answer
    acknowledged: list[tuple[str, float]] = field(default_factory=list)
    no_answer: int = 0
    slowest: float = 0.0
    unexpected: list[str] = field(default_factory=list)


def create_until(stop: threading.Event, client: httpx.Client, log: OutageWriter) -> None:
    """Create appointments one after another until ``stop``, recording every answer."""
    resource = RESOURCES[-1]
    while not stop.is_set():
        began = time.monotonic()
        try:
            response = client.post(resource.path, json=valid_body(resource))
        except httpx.TransportError:
            log.no_answer += 1
            continue
        log.slowest = max(log.slowest, time.monotonic() - began)
        log.statuses[response.status_code] += 1
        if response.status_code == 201:
            log.acknowledged.append((response.json()["id"], time.monotonic()))
        elif response.status_code == 503:
            assert_unavailable(response)
        else:
            log.unexpected.append(f"{response.status_code} {response.text}")
            if response.status_code != 500:
                return
        if response.status_code == 503:
            time.sleep(0.05)  # as a client honouring Retry-After would, but sooner


def test_database_outage_under_load_gives_503s_never_500(
    cluster: PrivateCluster, start_server: ServerLauncher
) -> None:
    """Eight writers create objects without pause while the database is stopped (fast
    shutdown: every connection is cut mid-statement) for a few seconds and started again,
    three times: every answer is 201 or a prompt 503 unavailable (never a 500: a connection
    that broke or is closing is never used again), writes resume after every restart without
    restarting the server, and every create answered 201 is in the database afterwards."""
    if not cluster.running:
        cluster.start()
    server, key = start_server.with_new_key(cluster.url, OVERPLANE_DATABASE_TIMEOUT=OUTAGE_TIMEOUT)
    stop = threading.Event()
    logs = [OutageWriter() for _ in range(OUTAGE_WRITERS)]
    clients = [server.client(key, timeout=30) for _ in logs]
    restarts: list[float] = []
    try:
        with ThreadPoolExecutor(max_workers=OUTAGE_WRITERS) as pool:
            writers = [
                pool.submit(create_until, stop, c, log)
                for c, log in zip(clients, logs, strict=True)
            ]
            try:
                time.sleep(2.0)
                for _ in range(OUTAGE_CYCLES):
                    cluster.stop()
                    time.sleep(OUTAGE_DOWN_SECONDS)
                    cluster.start()
                    restarts.append(time.monotonic())
                    time.sleep(3.0)
            finally:
                stop.set()
                for writer in writers:
                    writer.result()
    finally:
        for client in clients:
            client.close()
    statuses = sum((log.statuses for log in logs), Counter[int]())
    acknowledged = [entry for log in logs for entry in log.acknowledged]
    slowest = max(log.slowest for log in logs)
    print(
        f"\noutage under load: statuses {dict(sorted(statuses.items()))}, "
        f"no answer {sum(log.no_answer for log in logs)}, slowest answer {slowest:.2f} s"
    )
    assert [u for log in logs for u in log.unexpected] == []
    assert set(statuses) <= {201, 503}, statuses
    assert statuses[503] > 0, "the outages were not noticed"
    assert sum(log.no_answer for log in logs) == 0
    assert slowest < OUTAGE_ANSWER_SECONDS
    for restart in restarts:  # writes resumed after every restart, within seconds
        assert any(restart < at < restart + 3.0 for _, at in acknowledged), restart
    stored = {row[0] for row in sql(cluster.url, "SELECT id FROM crm_appointment")}
    missing = {object_id for object_id, _ in acknowledged} - stored
    assert not missing, f"{len(missing)} acknowledged creates are missing"
    assert server.process.poll() is None, "the same process all along, never restarted"
