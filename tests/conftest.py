"""Fixtures: the real application on real databases, reached over HTTP through httpx.

Every test that touches storage runs once per backend: SQLite always, PostgreSQL whenever
``OVERPLANE_TEST_POSTGRES_URL`` is set (for example
``postgresql://postgres@127.0.0.1:5432/postgres``). For PostgreSQL the run creates a database
of its own with a unique name and drops it at the end; if the server cannot be reached the
tests fail, they never skip.

Tests are isolated by account, not by database: each test gets a brand-new account and key,
so it sees only its own objects while the schema is migrated once per run.

Only fixtures live here; what they hand out (callers, servers, launchers) and every other
shared helper is in ``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest

from overplane.declarations import RESOURCES, Resource
from overplane.storage import migrate
from tests.helpers import Caller, Server, ServerLauncher, in_process, new_postgres_database

POSTGRES_ENV = "OVERPLANE_TEST_POSTGRES_URL"

# CI replays the same examples every run (a red CI blocks everything); local runs keep drawing
# new ones, which is where new failures are found.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")
BACKENDS = ["sqlite", "postgres"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A freshly created PostgreSQL database of this run's own, dropped at the end."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.fail(f"{POSTGRES_ENV} is not set")  # only reached if a test asks for postgres
    with new_postgres_database(admin_url, "overplane_test") as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database on each backend under test."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'overplane.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    """The application served on ``database_url`` for the whole run (without a webhook
    worker: tests of deliveries start apps of their own, see test_webhooks.py)."""
    with in_process(database_url) as running:
        yield running


@pytest.fixture
def api(server: Server) -> Caller:
    """A caller with a test-mode key of a brand-new account: it starts with no objects."""
    return server.new_caller()


@pytest.fixture(params=RESOURCES, ids=[r.name for r in RESOURCES])
def resource(request: pytest.FixtureRequest) -> Resource:
    """Each declared resource in turn."""
    value: Resource = request.param
    return value


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
    with new_postgres_database(os.environ[POSTGRES_ENV], "overplane_fresh") as url:
        yield url


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerLauncher]:
    """Starts ``overplane serve`` processes (see ``helpers.py``); stops them after the test."""
    launcher = ServerLauncher(tmp_path)
    yield launcher
    launcher.stop_all()
