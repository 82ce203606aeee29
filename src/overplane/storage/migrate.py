"""Bring a database's schema up to date with the Alembic migrations shipped in the package."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from overplane.declarations import EXTRA
from overplane.storage.database import is_postgres, sqlite_path

MIGRATIONS = Path(__file__).with_name("migrations")
#: Where the shipped migrations live, and where ``overplane migrations new`` writes by default.
VERSIONS = MIGRATIONS / "versions"
T = TypeVar("T")


def alembic_url(database_url: str) -> str:
    """The SQLAlchemy URL for ``database_url``: asyncpg for PostgreSQL, sqlite3 for SQLite."""
    if is_postgres(database_url):
        return "postgresql+asyncpg://" + database_url.split("://", 1)[1]
    path = sqlite_path(database_url)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def run_with_connection(sqlalchemy_url: str, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` on one SQLAlchemy connection, through asyncpg when the URL says so.

    asyncpg is the project's only PostgreSQL driver, so migrations use it too, through
    SQLAlchemy's async engine, rather than pulling in a second (synchronous) driver.
    """
    if "+asyncpg" in sqlalchemy_url:

        async def run() -> T:
            engine = create_async_engine(sqlalchemy_url, poolclass=sa.NullPool)
            try:
                async with engine.connect() as connection:
                    return await connection.run_sync(work)
            finally:
                await engine.dispose()

        return asyncio.run(run())
    engine = sa.create_engine(sqlalchemy_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return work(connection)
    finally:
        engine.dispose()


def _sqlite_server_default_differs(
    context: MigrationContext,
    inspected_column: sa.Column[object],
    metadata_column: sa.Column[object],
    inspected_default: str | None,
    metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    if metadata_column.identity is not None:
        return False
    return None


def server_default_comparison(dialect: str) -> bool | Callable[..., bool | None]:
    """Alembic's ``compare_server_default`` option for ``dialect``.

    ``seq`` is an identity column in the metadata; SQLite has no such thing (each insert fills
    seq, see ``objects.py``), so there its absence is no difference. PostgreSQL compares
    everything (Alembic's own comparison; a callable there trips over identity columns).
    """
    return True if dialect == "postgresql" else _sqlite_server_default_differs


def version_directories(extra: Sequence[Path] = ()) -> list[Path]:
    """The directories Alembic reads migrations from.

    The shipped ones, those of the modules named by ``OVERPLANE_EXTRA_RESOURCES``, then
    ``extra`` (``overplane migrations new --directory``).
    """
    directories = [VERSIONS, *EXTRA.migrations, *extra]
    return list(dict.fromkeys(Path(d).resolve() for d in directories))


def scripts_config(extra_versions: Sequence[Path] = ()) -> Config:
    """An Alembic configuration that knows the migrations (of every directory
    :func:`version_directories` names) but no database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    locations = os.pathsep.join(str(d) for d in version_directories(extra_versions))
    config.set_main_option("version_locations", locations.replace("%", "%%"))
    return config


def alembic_config(database_url: str, extra_versions: Sequence[Path] = ()) -> Config:
    """An Alembic configuration for ``database_url`` that needs no alembic.ini."""
    config = scripts_config(extra_versions)
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    return config


def upgrade(
    database_url: str, extra_versions: Sequence[Path] = (), *, revision: str = "head"
) -> None:
    """Apply every migration up to ``revision`` the database does not have yet (a no-op when
    it is there already); tests pass an older revision to make an outdated database."""
    command.upgrade(alembic_config(database_url, extra_versions), revision)


def head_revision() -> str | None:
    """The newest migration shipped in the package."""
    return ScriptDirectory.from_config(scripts_config()).get_current_head()


def current_revision(database_url: str) -> str | None:
    """The migration the database is at; None for a database never migrated."""

    def current(connection: sa.Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    return run_with_connection(alembic_url(database_url), current)


def is_current(database_url: str) -> bool:
    """Whether the database is at the newest migration."""
    return current_revision(database_url) == head_revision()
