"""Test harness: the real application on real databases, reached over HTTP through httpx.

Every test that touches storage runs once per backend: SQLite always, PostgreSQL whenever
``OVERPLANE_TEST_POSTGRES_URL`` is set (for example
``postgresql://postgres@127.0.0.1:5432/postgres``). For PostgreSQL the run creates a database
of its own with a unique name and drops it at the end; if the server cannot be reached the
tests fail, they never skip.

Tests are isolated by account, not by database: each test gets a brand-new account and key,
so it sees only its own objects while the schema is migrated once per run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import hypothesis
import pytest
from starlette.testclient import TestClient

from overplane.auth import keys
from overplane.declarations import RESOURCES, Resource
from overplane.http.app import OverplaneApp
from overplane.http.idempotency import REPLAYED
from overplane.settings import Settings
from overplane.storage import migrate
from servers import ServerLauncher

POSTGRES_ENV = "OVERPLANE_TEST_POSTGRES_URL"

# CI replays the same examples every run (a red CI blocks everything); local runs keep drawing
# new ones, which is where new failures are found.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")
BACKENDS = ["sqlite", "postgres"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


def with_database_name(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A freshly created PostgreSQL database of this run's own, dropped at the end."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.fail(f"{POSTGRES_ENV} is not set")  # only reached if a test asks for postgres
    name = f"overplane_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database_name(admin_url, name)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database on each backend under test."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'overplane.sqlite3'}"
    migrate.upgrade(url)
    return url


@dataclass
class Caller:
    """An HTTP client that sends one account's key in one mode with every request."""

    client: TestClient
    key: str
    account_name: str
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with this caller's ``Authorization`` header."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


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


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    """The application served on ``database_url`` for the whole run (without a webhook
    worker: tests of deliveries start apps of their own, see test_webhooks.py)."""
    app = OverplaneApp(Settings(database_url=database_url, access_log=False, webhook_worker=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Server(app=app, client=client, database_url=database_url)


@pytest.fixture
def api(server: Server) -> Caller:
    """A caller with a test-mode key of a brand-new account: it starts with no objects."""
    return server.new_caller()


@pytest.fixture(params=RESOURCES, ids=[r.name for r in RESOURCES])
def resource(request: pytest.FixtureRequest) -> Resource:
    """Each declared resource in turn."""
    value: Resource = request.param
    return value


def valid_body(resource: Resource, **overrides: str | None) -> dict[str, str | None]:
    """A create body with every required field, as the published pages' examples give them."""
    body: dict[str, str | None] = {f.name: f.example for f in resource.required_fields}
    body.update(overrides)
    return body


@pytest.fixture
def tmp_sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL in a fresh directory (not migrated)."""
    return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of this test's own on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'served.sqlite3'}"
        return
    admin_url = os.environ[POSTGRES_ENV]
    name = f"overplane_fresh_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database_name(admin_url, name)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerLauncher]:
    """Starts ``overplane serve`` processes (see ``servers.py``); stops them after the test."""
    launcher = ServerLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


def optional_field(resource: Resource) -> str:
    """A field that a PATCH may set and clear freely."""
    return next(f.name for f in resource.fields if not f.required)


def assert_replay_of(replay: httpx.Response, first: httpx.Response) -> None:
    """``replay`` is ``first`` again: status, body bytes, headers, first request's id."""
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers.get(REPLAYED) == "true"
    assert first.headers.get(REPLAYED) is None
    assert replay.headers["request-id"] == first.headers["request-id"]
    for name in ("content-type", "location", "etag"):
        assert replay.headers.get(name) == first.headers.get(name), name
