"""The ``overplane`` command: serve the API, migrate the database, manage accounts and keys.

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
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from overplane import __version__
from overplane.auth import keys
from overplane.cli.backup import backup
from overplane.cli.listen import listen
from overplane.cli.migrations import migrations_app
from overplane.declarations import RESOURCES
from overplane.settings import Settings, SettingsError, redacted
from overplane.storage import migrate as migrations
from overplane.storage.database import Database, DatabaseUnavailable, open_database
from overplane.webhooks.worker import DeliveryWorker

T = TypeVar("T")

app = typer.Typer(help="The Overplane API server.", no_args_is_help=True, add_completion=False)
accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage secret API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(migrations_app, name="migrations")
app.command()(listen)
app.command()(backup)

err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` on standard error and return the exit to raise."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def load_settings() -> Settings:
    """The settings, or a clean exit naming the bad variable."""
    try:
        return Settings.from_environ()
    except SettingsError as exc:
        raise fail(str(exc)) from None


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
    ``work`` on it and close it."""
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


def serve_with_granian(host: str, port: int, workers: int, shutdown_seconds: int) -> None:
    """Serve the application on granian (Rust HTTP server, ASGI interface, uvloop)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        "overplane.http.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_access=False,
        workers_kill_timeout=shutdown_seconds,
    ).serve()


def print_version(value: bool) -> None:
    """Print ``overplane <version>`` and exit, when ``--version`` is given."""
    if value:
        print(f"overplane {__version__}")
        raise typer.Exit()


@app.callback()
def overplane(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """The Overplane API server."""


@app.command()
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
    new_secret = with_database(
        settings, lambda db: keys.ensure_bootstrap(db, settings.bootstrap_key), migrate=migrate
    )
    if new_secret:
        print("Created the default account and a test key. It is shown only this once:")
        print(new_secret, flush=True)
    if http_server is HTTPServer.granian:
        serve_with_granian(host, port, workers, settings.shutdown_timeout_seconds)
        return
    import uvicorn

    signal.signal(signal.SIGTERM, exit_cleanly)  # a drained shutdown exits 0, not 143
    uvicorn.run(
        "overplane.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="on",
        log_level="info",
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


@app.command()
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


@app.command()
def worker() -> None:
    """Deliver webhooks, without serving the API, until SIGTERM or Ctrl-C."""
    settings = load_settings()
    # The worker reports through logging (an unavailable database, a failed delivery);
    # without a handler Python would print only warnings, with no time. Other libraries
    # (Alembic while migrating) stay at warnings.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("overplane").setLevel(logging.INFO)
    # Until the worker runs (and handles signals itself), a SIGTERM during the migration
    # still means "stop", which is no failure.
    signal.signal(signal.SIGTERM, exit_cleanly)
    with_database(settings, lambda db: deliver_until_signalled(db, settings))


@accounts_app.command("create")
def accounts_create(name: Annotated[str, typer.Argument(help="A unique account name.")]) -> None:
    """Create an account."""
    account_id = with_database(load_settings(), lambda db: keys.create_account(db, name))
    print(account_id)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="The account's name.")],
    mode: Annotated[str, typer.Option(help="test or live.")] = "test",
) -> None:
    """Create a secret key; it is printed as the last line, and only this once."""
    if mode not in keys.MODES:
        raise fail("--mode must be test or live")
    info, secret = with_database(load_settings(), lambda db: keys.create_key(db, account, mode))
    err.print(f"Created key {info.id} ({info.mode}) for account {info.account_name}.")
    err.print("Store the secret now: it is never shown again.")
    print(secret)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
) -> None:
    """List keys: id, account, mode, masked hint, created and revoked times; never a secret."""
    infos = with_database(load_settings(), lambda db: keys.list_keys(db, account))
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
    Console(width=160).print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")]) -> None:
    """Revoke a key: it stops working at once."""
    with_database(load_settings(), lambda db: keys.revoke_key(db, key_id))
    err.print(f"Revoked {key_id}.")


def main() -> None:
    """Entry point of the ``overplane`` console script."""
    app(prog_name="overplane")


if __name__ == "__main__":
    main()
