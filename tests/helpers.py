"""What the tests share: callers, servers (in process and as real processes), request bodies,
assertions and plain SQL on a database behind the server's back.

The fixtures that hand these out live in ``conftest.py``; everything else a second test file
would need lives here, once. Tests import it as ``from tests.helpers import ...``.

- :class:`Caller`: one account's key in one mode, sending requests to an in-process app
  (Starlette's ``TestClient``) or to a real server (any ``httpx.Client``), with the operations
  the tests use most (:meth:`Caller.create`, :meth:`Caller.list`, :meth:`Caller.total`).
- :class:`Server` and :func:`in_process`: the application in this process, and ways to mint
  accounts and keys for it; :func:`prepare_database` readies a database for real servers.
- :class:`ServerLauncher` and :class:`RunningServer`: real ``overplane serve`` processes on free
  ports of 127.0.0.1, each in a process group of its own, so that a test can kill it with
  SIGKILL or stop it with SIGTERM without touching anything else, and a Ctrl-C of the test run
  does not reach it (the launcher stops every server it started at the end of the test).
- :func:`sql` and :func:`sql_transaction`: statements run on a database URL of either backend
  with a connection of their own, bypassing the application, as an operator or another program
  would; :func:`on_database` does the same with a SQLAlchemy connection, for schema work.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import sqlalchemy as sa
from starlette.testclient import TestClient

from overplane.auth import keys
from overplane.declarations import Field, Resource
from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from overplane.storage import migrate
from overplane.storage.database import is_postgres, open_database, sqlite_path
from overplane.webhooks import SIGNATURE_HEADER

T = TypeVar("T")

#: The tests run without rate limits (a suite sends far more than 25 requests a second with
#: one key), except those of the limits, which ask for them: tests/test_limits.py.
NO_LIMITS: dict[str, Any] = {"rate_limit": False}
NO_LIMITS_ENV = {"OVERPLANE_RATE_LIMIT": "off"}

#: The header a replayed response carries (docs/api.md, "Safe retries").
REPLAYED = "idempotent-replayed"
#: A request id as every response carries it, in ``Request-Id`` and in an error's body.
REQUEST_ID = re.compile(r"^req_[0-9A-Za-z]+$")
#: The error ``type`` that goes with each status the tests check (docs/api.md, "Errors").
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    500: "api_error",
    503: "api_error",
}
#: List query parameters: a mapping, or pairs (a name may repeat).
Params = Sequence[tuple[str, str]] | dict[str, str]
#: A filter every object meets: its ``total`` is a real count through an index, where the
#: unfiltered total comes from the counters.
MATCH_ALL = {"created_at[gte]": "1970-01-01T00:00:00Z"}

# --------------------------------------------------------------------------------------------
# Bodies, paths and keys


def valid_body(resource: Resource, **overrides: str | None) -> dict[str, str | None]:
    """A create body with every required field, as the published pages' examples give them."""
    body: dict[str, str | None] = {f.name: f.example for f in resource.required_fields}
    body.update(overrides)
    return body


def optional_field(resource: Resource) -> Field:
    """The first optional field of ``resource``: one a PATCH may set and clear freely."""
    return next(f for f in resource.fields if not f.required)


def field_pair(resource: Resource) -> tuple[str, str]:
    """Two optional fields, which concurrent writers set to one value per write: if they ever
    differ, a write was applied by halves or two writes were mixed."""
    names = [f.name for f in resource.fields if not f.required]
    return names[0], names[1]


def object_path(resource: Resource, object_id: str) -> str:
    """The path of one object of ``resource``."""
    return f"{resource.path}/{object_id}"


def new_api_key() -> str:
    """A fresh test-mode secret in the format the server issues, to register as a bootstrap key."""
    return "sk_test_" + secrets.token_hex(16)


# --------------------------------------------------------------------------------------------
# Callers and in-process servers


@dataclass
class Caller:
    """An HTTP client that sends one account's key in one mode with every request.

    ``client`` is Starlette's ``TestClient`` for the in-process app, or an ``httpx.Client``
    whose ``base_url`` is a real server.
    """

    client: httpx.Client
    key: str
    account_name: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with this caller's ``Authorization`` header."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """``GET path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """``POST path``."""
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PATCH path``."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """``DELETE path``."""
        return self.request("DELETE", path, **kwargs)

    def create(self, resource: Resource, **overrides: str | None) -> dict[str, Any]:
        """Create an object with the required fields plus ``overrides`` (must be a 201); it."""
        response = self.post(resource.path, json=valid_body(resource, **overrides))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def total(self, resource: Resource, **params: str) -> int:
        """The ``total`` of a list request with ``params`` (must be a 200)."""
        response = self.get(resource.path, params={"limit": "1", **params})
        assert response.status_code == 200, response.text
        value: int = response.json()["total"]
        return value

    # Last, so that ``list`` means the builtin in every annotation above.
    def list(self, resource: Resource, params: Params = ()) -> dict[str, Any]:
        """The list envelope for ``params`` (must be a 200 with exactly its three keys)."""
        response = self.get(resource.path, params=params)
        assert response.status_code == 200, response.text
        envelope: dict[str, Any] = response.json()
        assert builtins.list(envelope) == ["data", "has_more", "total"], envelope
        return envelope


@dataclass
class Server:
    """The running application on one backend, and ways to mint accounts and keys for it."""

    app: OverplaneApp
    client: TestClient
    database_url: str

    def run(self, coroutine_function: Any, *args: Any) -> Any:
        """Run an async function on the server's event loop (where its database lives)."""
        return self.client.portal.call(coroutine_function, *args)  # type: ignore[union-attr]

    def new_account(self) -> str:
        """A new account with a unique name."""
        name = f"acct-{secrets.token_hex(6)}"
        self.run(keys.create_account, self.app.db, name)
        return name

    def new_caller(self, mode: str = "test", account_name: str | None = None) -> Caller:
        """A caller holding a new key of ``mode`` for a new (or the named) account."""
        name = account_name or self.new_account()
        _, secret = self.run(keys.create_key, self.app.db, name, mode)
        return Caller(self.client, secret, name)

    def caller(self, key: str, account_name: str) -> Caller:
        """A caller of this server with an existing ``key`` of ``account_name``."""
        return Caller(self.client, key, account_name)


@contextmanager
def in_process(database_url: str, **settings: Any) -> Iterator[Server]:
    """The application on ``database_url`` (already migrated) in this process, started and,
    at the end, shut down; a server error is a 500 response, as a client would see it.
    ``settings`` are further :class:`Settings` values (the access log is off, and so is the
    webhook worker unless asked for: a worker sends every due delivery of its database; and
    so are the rate limits, unless a test of them asks for them)."""
    values: dict[str, Any] = {"access_log": False, "webhook_worker": False} | NO_LIMITS | settings
    app = OverplaneApp(Settings(database_url=database_url, **values))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Server(app=app, client=client, database_url=database_url)


def prepare_database(database_url: str, key: str) -> None:
    """Migrate the database and register ``key`` as the default account's bootstrap key, as a
    deploy job would before the servers start (so that several can start side by side)."""
    migrate.upgrade(database_url)

    async def register() -> None:
        db = await open_database(Settings(database_url=database_url))
        try:
            await keys.ensure_bootstrap(db, key)
        finally:
            await db.close()

    asyncio.run(register())


# --------------------------------------------------------------------------------------------
# Assertions


def assert_error(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> dict[str, Any]:
    """``response`` is the contract's error JSON with this status, code and ``param`` (absent
    when None): ``{"error": {type, code, message, param?, request_id}}``; the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    expected_keys = {"type", "code", "message", "request_id"} | (
        {"param"} if param is not None else set()
    )
    assert set(error) == expected_keys, error
    assert error["type"] == ERROR_TYPES[status], error
    assert error["code"] == code, error
    assert error.get("param") == param, error
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert REQUEST_ID.match(error["request_id"]), error
    assert response.headers["request-id"] == error["request_id"]
    return error


def assert_replay_of(replay: httpx.Response, first: httpx.Response) -> None:
    """``replay`` is ``first`` again: status, body bytes, headers, first request's id."""
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers.get(REPLAYED) == "true"
    assert first.headers.get(REPLAYED) is None
    assert replay.headers["request-id"] == first.headers["request-id"]
    for name in ("content-type", "location", "etag"):
        assert replay.headers.get(name) == first.headers.get(name), name


# --------------------------------------------------------------------------------------------
# Plain SQL behind the server's back

#: One statement (``?`` placeholders on both backends) and its arguments.
Statement = tuple[str, Sequence[Any]]


def with_database_name(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def new_postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A PostgreSQL database with a unique name starting with ``prefix``, created on
    ``admin_url``'s server for the block and then dropped (whoever is still connected)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database_name(admin_url, name)
    finally:
        sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _numbered(statement: str, count: int) -> str:
    """``statement`` with its ``?`` placeholders numbered ``$1``, ``$2``... for asyncpg."""
    for index in range(1, count + 1):
        statement = statement.replace("?", f"${index}", 1)
    return statement


def _run_sql(
    database_url: str, statements: Sequence[Statement], commit: bool | None
) -> list[tuple[Any, ...]]:
    """Run ``statements`` on a connection of their own: each on its own (``commit`` None), or
    in one transaction then committed or rolled back; the rows of the last one."""
    if is_postgres(database_url):

        async def run() -> list[tuple[Any, ...]]:
            connection = await asyncpg.connect(database_url, timeout=10)
            try:
                transaction = None if commit is None else connection.transaction()
                if transaction is not None:
                    await transaction.start()
                rows: list[tuple[Any, ...]] = []
                for statement, args in statements:
                    found = await connection.fetch(_numbered(statement, len(args)), *args)
                    rows = [tuple(row) for row in found]
                if transaction is not None:
                    await (transaction.commit() if commit else transaction.rollback())
                return rows
            finally:
                await connection.close()

        return asyncio.run(run())
    path = sqlite_path(database_url)
    with closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as connection:
        if commit is not None:
            connection.execute("BEGIN IMMEDIATE")
        rows = []
        for statement, args in statements:
            rows = connection.execute(statement, tuple(args)).fetchall()
        if commit is not None:
            connection.execute("COMMIT" if commit else "ROLLBACK")
        return rows


def sql(database_url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) on the database at ``database_url`` with a
    connection of its own, bypassing the application; the rows it returns."""
    return _run_sql(database_url, [(statement, args)], commit=None)


def sql_transaction(database_url: str, statements: Sequence[Statement], *, commit: bool) -> None:
    """Run ``statements`` (``?`` placeholders) in one transaction on the database at
    ``database_url``, bypassing the application, then commit it or roll it back."""
    _run_sql(database_url, statements, commit=commit)


def on_database(database_url: str, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` on a SQLAlchemy connection of its own to ``database_url`` (asyncpg for
    PostgreSQL), bypassing the application; what it returns."""
    return migrate.run_with_connection(migrate.alembic_url(database_url), work)


def index_names(connection: sa.Connection) -> set[str]:
    """The names of every index in the connected database (its current schema)."""
    if connection.dialect.name == "sqlite":
        statement = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        statement = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    return {str(row[0]) for row in connection.execute(sa.text(statement))}


def account_id(database_url: str, name: str) -> str:
    """The id of the account called ``name``."""
    return str(sql(database_url, "SELECT id FROM accounts WHERE name = ?", name)[0][0])


def count_and_counter(
    database_url: str, resource: Resource, account: str, livemode: bool
) -> tuple[int, int]:
    """``count(*)`` of the account's rows in one mode, and the sum of its counter rows.

    One statement, so both are read from one snapshot even if a write is still finishing.
    """
    table = resource.table_name
    row = sql(
        database_url,
        f"SELECT (SELECT count(*) FROM {table} WHERE account_id = ? AND livemode = ?), "
        "(SELECT coalesce(sum(n), 0) FROM object_counts "
        "WHERE table_name = ? AND account_id = ? AND livemode = ?)",
        account,
        livemode,
        table,
        account,
        livemode,
    )[0]
    return int(row[0]), int(row[1])


def table_count_and_counter(database_url: str, resource: Resource) -> tuple[int, int]:
    """``count(*)`` of a whole table and the sum of all its counter rows (every account)."""
    table = resource.table_name
    row = sql(
        database_url,
        f"SELECT (SELECT count(*) FROM {table}), "
        "(SELECT coalesce(sum(n), 0) FROM object_counts WHERE table_name = ?)",
        table,
    )[0]
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------------------------
# Real server processes

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
    environ = {**os.environ, **NO_LIMITS_ENV, "OVERPLANE_DATABASE_URL": database_url, **env}
    return subprocess.run(
        [*OVERPLANE, *args], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], message: str) -> None:
    """An ``overplane`` command failed as an operator should see it: exit status 1 and a
    message on standard error containing ``message``, without a traceback."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


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
        """Where the server listens: ``http://127.0.0.1:<port>``."""
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
        environ = {**os.environ, **NO_LIMITS_ENV, "OVERPLANE_DATABASE_URL": database_url, **env}
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

    def with_new_key(self, database_url: str, *args: str, **env: str) -> tuple[RunningServer, str]:
        """Start ``overplane serve`` with a fresh bootstrap key (:func:`new_api_key`) and wait
        until it answers /healthz; the server and the key."""
        key = new_api_key()
        return self(database_url, *args, OVERPLANE_BOOTSTRAP_KEY=key, **env), key

    def stop_all(self) -> None:
        """Stop every server this launcher started (SIGKILL if SIGTERM does not do it)."""
        for server in self.started:
            server.stop()


# --- webhook receivers ---------------------------------------------------------------

#: The longest a test waits for deliveries to arrive.
WAIT_SECONDS = 15.0


class Received(NamedTuple):
    """One request a receiver got."""

    body: bytes
    signature: str
    path: str
    headers: dict[str, str]


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers what ``status`` says."""

    def __init__(
        self, status: Callable[[int], int] = lambda n: 200, delay_seconds: float = 0.0
    ) -> None:
        self.received: list[Received] = []
        self.status = status
        self.delay_seconds = delay_seconds
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    return
                time.sleep(receiver.delay_seconds)  # a slow receiver: deliveries in flight
                with receiver._lock:
                    signature = self.headers.get(SIGNATURE_HEADER, "")
                    headers = dict(self.headers.items())
                    receiver.received.append(Received(body, signature, self.path, headers))
                    code = receiver.status(len(receiver.received))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        """The bodies received so far, decoded."""
        with self._lock:
            return [json.loads(r.body) for r in self.received]

    def wait_for(self, count: int, seconds: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        """Wait (bounded) until ``count`` requests arrived; the events received."""
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the application over real TCP, in this process; proxies and scripted servers -----------


@contextmanager
def served_over_tcp(database_url: str, **settings: Any) -> Iterator[str]:
    """The application on ``database_url`` (migrated) served by uvicorn over real TCP on a
    free port of 127.0.0.1, in a thread of this process (cheaper to start than a process, and
    a client of it speaks real HTTP); its base URL. ``settings`` as for :func:`in_process`."""
    import uvicorn

    values: dict[str, Any] = {"access_log": False, "webhook_worker": False} | NO_LIMITS | settings
    app = OverplaneApp(Settings(database_url=database_url, **values))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the in-process server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class ProxiedRequest(NamedTuple):
    """One request that went through a :class:`DroppingProxy`."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    dropped: bool


def _read_http_message(stream: Any) -> tuple[bytes, dict[str, str], bytes] | None:
    """One HTTP/1.1 message from a file-like socket: its head line, headers (lower-case) and
    body (by Content-Length); None at end of stream."""
    head = stream.readline()
    if not head:
        return None
    headers: dict[str, str] = {}
    while True:
        line = stream.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return head, headers, body


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``) that forwards
    each HTTP request, lets the server answer it in full, and then, when ``drop`` says so for
    that request, closes the client's connection instead of passing the response on: the
    server did the work, the client never heard back. Every request is recorded."""

    def __init__(self, upstream: str, drop: Callable[[ProxiedRequest, int], bool]) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop = drop
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as incoming:
            while True:
                message = _read_http_message(incoming)
                if message is None:
                    return
                head, headers, body = message
                method, path, _ = head.decode("latin-1").split(" ", 2)
                response = self._forward(head, headers, body)
                with self._lock:
                    number = len(self.requests)
                    request = ProxiedRequest(method, path, headers, body, False)
                    dropped = self.drop(request, number)
                    self.requests.append(request._replace(dropped=dropped))
                if dropped:
                    # The server has answered; the client gets a closed connection instead.
                    connection.shutdown(socket.SHUT_RDWR)
                    return
                connection.sendall(response)

    def _forward(self, head: bytes, headers: dict[str, str], body: bytes) -> bytes:
        """Send the request upstream on a connection of its own; the whole response."""
        upstream_headers = {**headers, "connection": "close", "content-length": str(len(body))}
        lines = [head.rstrip(b"\r\n")] + [
            f"{name}: {value}".encode("latin-1") for name, value in upstream_headers.items()
        ]
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            with upstream.makefile("rb") as answer:
                message = _read_http_message(answer)
        assert message is not None, "the server closed without answering"
        status, response_headers, response_body = message
        # Re-framed for the client: the body by Content-Length, the connection kept open.
        response_headers["content-length"] = str(len(response_body))
        response_headers.pop("connection", None)
        response_headers.pop("transfer-encoding", None)
        out = [status.rstrip(b"\r\n")] + [
            f"{name}: {value}".encode("latin-1") for name, value in response_headers.items()
        ]
        return b"\r\n".join(out) + b"\r\n\r\n" + response_body

    def close(self) -> None:
        self._closed = True
        self._listener.close()


class Scripted(NamedTuple):
    """One response a :class:`ScriptedServer` gives: status, JSON body (or raw bytes), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)


class ScriptedServer:
    """A tiny HTTP server on 127.0.0.1 (not Overplane) that answers the scripted responses in
    order (the last one again once the script runs out) and records when each request came:
    for the client's behaviour on answers our server does not give (429, a 5xx from a proxy,
    fields a newer server would add)."""

    def __init__(self, script: Sequence[Scripted]) -> None:
        self.script = list(script)
        self.arrivals: list[float] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                scripted.arrivals.append(time.monotonic())
                scripted.requests.append((self.command, self.path, dict(self.headers), body))
                index = min(len(scripted.arrivals) - 1, len(scripted.script) - 1)
                status, payload, headers = scripted.script[index]
                content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
