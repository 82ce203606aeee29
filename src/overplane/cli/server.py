"""The server's commands: serve the API, run the webhook worker, migrate the database, manage
accounts and keys. They need the server's dependencies (the ``server`` extra); ``main.py``
adds them to the ``overplane`` command when those are installed.

Every command reads the one settings object from the environment and, through
:func:`with_database`, brings the database schema up to date once before it touches data
(migrations are idempotent). ``serve --no-migrate`` only checks the schema and refuses to start
on an outdated one, for deploys that migrate as a separate step. A new command (or sub-command
group: a ``typer.Typer`` added with ``app.add_typer``) gets its database from
:func:`with_database` too.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import resource
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from overplane import logs, metrics
from overplane.auth import keys
from overplane.cli import output
from overplane.cli.backup import backup
from overplane.cli.migrations import migrations_app
from overplane.cli.output import JsonOption, err, fail, print_json, table_console
from overplane.declarations import RESOURCES
from overplane.rfc3339 import format_ms
from overplane.settings import DATABASE_FILE, Settings, SettingsError, redacted
from overplane.storage import migrate as migrations
from overplane.storage.database import (
    Database,
    DatabaseUnavailable,
    is_postgres,
    open_database,
    sqlite_path,
)
from overplane.webhooks.worker import DeliveryWorker

if TYPE_CHECKING:
    from overplane.http.app import OverplaneApp

T = TypeVar("T")

accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage secret API keys.", no_args_is_help=True)


def served_app() -> OverplaneApp:
    """The application as ``overplane serve`` runs it, in each server process: this
    process's log lines in the one format first (``overplane/logs.py``), then the app."""
    # Imported here: the app (and prometheus_client with it) only after ``serve`` has set
    # the metrics directory up (overplane/metrics.py).
    from overplane.http.app import OverplaneApp

    settings = Settings.from_environ()
    logs.configure(settings.log_format)
    return OverplaneApp(settings)


def load_settings() -> Settings:
    """The settings, or a clean exit naming the bad variable.

    When the database is the default one and the working directory holds an
    ``overplane.sqlite3`` (the default of earlier versions), say so: the command will not
    silently use, nor silently ignore, a database the user may mean.
    """
    try:
        settings = Settings.from_environ()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    legacy = Path.cwd() / DATABASE_FILE
    if settings.database_is_default and legacy.exists():
        default = Path(sqlite_path(settings.database_url))
        if legacy.resolve() != default.resolve():
            err.print(
                f"[yellow]note:[/yellow] ./{DATABASE_FILE} is not used: the default database "
                f"is {default}. To keep using the file here, set "
                f"OVERPLANE_DATABASE_URL=sqlite:///{legacy.resolve()} (or move it)."
            )
    return settings


def describe_database(database_url: str) -> str:
    """The database as a person should see it: the SQLite file's absolute path, or the
    URL without its password."""
    if is_postgres(database_url):
        return redacted(database_url)
    return f"{Path(sqlite_path(database_url)).resolve()} (SQLite)"


def ensure_home(settings: Settings) -> None:
    """Create ``OVERPLANE_HOME`` (mode 700: it holds the data) for the default database."""
    if settings.database_is_default:
        Path(settings.home).mkdir(mode=0o700, parents=True, exist_ok=True)


def prepare_schema(database_url: str, *, migrate: bool) -> None:
    """Bring the schema up to date, or (``migrate=False``) only check that it is.

    Without ``migrate`` nothing is ever written to the schema: an outdated database is refused
    and left as it is, for ``overplane migrate`` to upgrade when the operator chooses.
    """
    try:
        if migrate:
            migrations.upgrade(database_url)
            return
        current = migrations.is_current(database_url)
    except Exception as exc:  # any driver's connection error: report it, not a traceback
        verb = "migrate" if migrate else "check the schema of"
        raise fail(f"cannot {verb} {redacted(database_url)}: {exc}") from None
    if not current:
        raise fail("the database schema is not up to date: run `overplane migrate` first")


def with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = True
) -> T:
    """Migrate (or, with ``migrate=False``, check the schema), open the database, run
    ``work`` on it and close it. Says on standard error which database that is."""
    ensure_home(settings)
    err.print(f"Database: {describe_database(settings.database_url)}")
    prepare_schema(settings.database_url, migrate=migrate)

    async def run() -> T:
        db = await open_database(settings)
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except keys.CredentialError as exc:
        raise fail(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise fail(f"the database is unavailable: {exc}") from None


def timestamp(epoch_ms: int | None) -> str:
    """A key listing's time: ISO 8601 to the second, or an empty cell."""
    if epoch_ms is None:
        return ""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """Handle SIGTERM by exiting with status 0.

    uvicorn catches SIGTERM itself while it serves and shuts down gracefully; afterwards it
    raises the signal again against the handler that was in place before it started. With
    the default handler the process would then die "killed by SIGTERM" (status 143), which
    supervisors report as a failure although every request was drained.
    """
    raise SystemExit(0)


class HTTPServer(enum.StrEnum):
    """The HTTP servers ``overplane serve`` can run the application on."""

    uvicorn = "uvicorn"
    granian = "granian"


def raise_file_limit(connections: int) -> None:
    """Raise this process's open-file limit (inherited by its workers) to fit ``connections``
    client connections plus the database's and the log's, up to the hard limit.

    Many systems start processes with a soft limit of 1,024 files, which would cap a server
    far below ``OVERPLANE_HTTP_MAX_CONNECTIONS``: past it, accepting fails and uvicorn logs
    "Too many open files" for every new connection.
    """
    wanted = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            logging.getLogger("overplane.http").warning(
                "the open-file limit (hard %d) is below OVERPLANE_HTTP_MAX_CONNECTIONS + 256 "
                "(%d): connections beyond it will fail to be accepted",
                hard,
                wanted,
            )


def serve_with_granian(host: str, port: int, workers: int, settings: Settings) -> None:
    """Serve the application on granian (Rust HTTP server, ASGI interface, uvloop).

    granian (hyper) bounds the time to read headers and the buffer that holds them itself;
    the body and send timeouts, the header count and the connection limit are uvicorn's only
    (docs/deployment.md, "Slow and hostile clients").
    """
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    Granian(
        "overplane.cli.server:served_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_access=False,
        # granian's lines go to the root logger, in the one format (overplane/logs.py)
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {},
            "handlers": {},
            "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
        },
        workers_kill_timeout=settings.shutdown_timeout_seconds,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.http_header_timeout_seconds * 1000),
            max_buffer_size=max(settings.http_max_header_bytes, 8192),
        ),
    ).serve()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    migrate: Annotated[
        bool, typer.Option(help="Apply pending migrations at start (else refuse to start).")
    ] = True,
    http_server: Annotated[
        HTTPServer,
        typer.Option(help="uvicorn, or granian: faster point reads, slower writes."),
    ] = HTTPServer.uvicorn,
) -> None:
    """Run the API server."""

    settings = load_settings()
    output.failures_as_log_lines = logs.configure(settings.log_format) == "json"
    try:
        if settings.metrics_listen:
            # Before anything imports prometheus_client (it reads the directory at import).
            metrics.prepare()
            try:
                metrics.start_listener(*metrics.parse_listen(settings.metrics_listen))
            except OSError as exc:
                raise fail(f"cannot serve metrics on {settings.metrics_listen}: {exc}") from None
        new_secret = with_database(
            settings, lambda db: keys.ensure_bootstrap(db, settings.bootstrap_key), migrate=migrate
        )
        if new_secret:
            print("Created the default account and a test key. It is shown only this once:")
            print(new_secret, flush=True)
        raise_file_limit(settings.http_max_connections)
        if http_server is HTTPServer.granian:
            serve_with_granian(host, port, workers, settings)
            return
        import uvicorn

        signal.signal(signal.SIGTERM, exit_cleanly)  # a drained shutdown exits 0, not 143
        uvicorn.run(
            "overplane.cli.server:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            # httptools, bounded against slow and hostile clients, with JSON errors
            http="overplane.http.protocol:GuardedHttpToolsProtocol",
            timeout_keep_alive=settings.http_keep_alive_seconds,
            access_log=False,
            lifespan="on",
            log_level="info",
            log_config=None,  # uvicorn's lines go to the root logger, in the one format
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        )
    finally:
        # The command also runs inside other programs (the tests): leave output as found.
        output.failures_as_log_lines = False


def migrate() -> None:
    """Apply the schema migrations to the configured database."""
    settings = load_settings()
    with_database(settings, lambda db: db.ping())
    err.print(f"The schema of {redacted(settings.database_url)} is up to date.")


async def deliver_until_signalled(db: Database, settings: Settings) -> None:
    """Run the delivery worker on ``db`` until SIGTERM or SIGINT, then stop it.

    The worker is cancelled at once: a delivery in flight is abandoned, and its lease expires
    seconds later so that another worker (or this one, restarted) sends it again. That is the
    at-least-once contract; a receiver may see that event twice.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log = logging.getLogger("overplane.webhooks")
    log.info("webhook worker started on %s", redacted(settings.database_url))
    worker = asyncio.create_task(DeliveryWorker(db, settings, RESOURCES).run_forever())
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if worker in done:
            worker.result()  # it only ends by failing: let the failure show
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for task in (worker, stopping):
            task.cancel()
        await asyncio.gather(worker, stopping, return_exceptions=True)
    log.info("webhook worker stopped")


def worker() -> None:
    """Deliver webhooks, without serving the API, until SIGTERM or Ctrl-C."""
    settings = load_settings()
    # The worker reports through logging (an unavailable database, a failed delivery), in
    # the servers' one format; other libraries (Alembic while migrating) stay at warnings.
    logs.configure(settings.log_format)
    # Until the worker runs (and handles signals itself), a SIGTERM during the migration
    # still means "stop", which is no failure.
    signal.signal(signal.SIGTERM, exit_cleanly)
    with_database(settings, lambda db: deliver_until_signalled(db, settings))


def key_json(info: keys.KeyInfo) -> dict[str, Any]:
    """A key as ``--json`` prints it: never the secret."""
    return {
        "id": info.id,
        "account": info.account_name,
        "mode": info.mode,
        "hint": info.hint,
        "created_at": format_ms(info.created_at),
        "revoked_at": None if info.revoked_at is None else format_ms(info.revoked_at),
    }


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="A unique account name.")],
    json_output: JsonOption = False,
) -> None:
    """Create an account; prints its id."""
    account_id = with_database(load_settings(), lambda db: keys.create_account(db, name))
    if json_output:
        print_json({"id": account_id, "name": name.strip()})
    else:
        print(account_id)


@accounts_app.command("list")
def accounts_list(json_output: JsonOption = False) -> None:
    """List accounts: id, name, created time and working keys per mode."""
    rows = with_database(load_settings(), keys.list_accounts)
    if json_output:
        print_json(
            [
                {
                    "id": row.id,
                    "name": row.name,
                    "created_at": format_ms(row.created_at),
                    "active_keys": {"test": row.test_keys, "live": row.live_keys},
                }
                for row in rows
            ]
        )
        return
    table = Table("id", "name", "created", "test keys", "live keys")
    for row in rows:
        table.add_row(
            row.id, row.name, timestamp(row.created_at), str(row.test_keys), str(row.live_keys)
        )
    table_console().print(table)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="The account's name.")],
    mode: Annotated[str, typer.Option(help="test or live.")] = "test",
    json_output: JsonOption = False,
) -> None:
    """Create a secret key; it is printed as the last line, and only this once."""
    if mode not in keys.MODES:
        raise fail("--mode must be test or live")
    info, secret = with_database(load_settings(), lambda db: keys.create_key(db, account, mode))
    err.print(f"Created key {info.id} ({info.mode}) for account {info.account_name}.")
    err.print("Store the secret now: it is never shown again.")
    if json_output:
        print_json(key_json(info) | {"secret": secret})
    else:
        print(secret)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List keys: id, account, mode, masked hint, created and revoked times; never a secret."""
    infos = with_database(load_settings(), lambda db: keys.list_keys(db, account))
    if json_output:
        print_json([key_json(info) for info in infos])
        return
    table = Table("id", "account", "mode", "key", "created", "revoked")
    for info in infos:
        table.add_row(
            info.id,
            info.account_name,
            info.mode,
            info.hint,
            timestamp(info.created_at),
            timestamp(info.revoked_at),
        )
    table_console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a key: it stops working at once."""
    with_database(load_settings(), lambda db: keys.revoke_key(db, key_id))
    err.print(f"Revoked {key_id}.")
    if json_output:
        print_json({"id": key_id, "revoked": True})


def register(app: typer.Typer) -> None:
    """Add the server's commands to the ``overplane`` command."""
    app.command()(serve)
    app.command()(migrate)
    app.command()(worker)
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(keys_app, name="keys")
    app.add_typer(migrations_app, name="migrations")
    app.command()(backup)
