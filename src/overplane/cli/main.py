"""The ``overplane`` command.

Two kinds of commands, as docs/architecture.md says of ``cli/``:

- the server's (``serve``, ``worker``, ``migrate``, ``migrations``, ``accounts``, ``keys``,
  in ``server.py``): they work on the database through storage and need the ``server`` extra;
- the API's (``appointments``, ``party-links`` and every declared resource, ``export``,
  ``import``, ``listen``): clients of any server over HTTP, which work with the client alone
  (``pip install overplane``). Without the server's dependencies the server's commands are
  still listed, and say what to install.

``config`` prints the settings either kind reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
import typer.main
from typer.core import TyperGroup

from overplane import __version__
from overplane.cli.config import config
from overplane.cli.data import command_name, events_app, resource_app
from overplane.cli.listen import listen
from overplane.cli.output import fail
from overplane.cli.transfer import export_app, import_app
from overplane.declarations import RESOURCES

if TYPE_CHECKING:  # typer carries its own copy of click
    from typer._click import Command, Context

#: The server's commands (``server.py``). They are imported when one of them runs, or when
#: the help lists them, never for a data command: the server's modules (SQLAlchemy, Alembic,
#: the drivers, uvicorn) took about 0.65 s of every ``overplane import``'s start-up.
SERVER_COMMANDS = ("serve", "migrate", "worker", "accounts", "keys", "migrations", "backup")


class _Commands(TyperGroup):
    """The ``overplane`` command group, which loads the server's commands on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [
            *super().list_commands(ctx),
            *(n for n in SERVER_COMMANDS if n not in self.commands),
        ]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in SERVER_COMMANDS and cmd_name not in self.commands:
            for name, command in server_commands().items():
                self.add_command(command, name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_Commands, help="The Overplane API server.", no_args_is_help=True, add_completion=False
)
app.command()(listen)
app.command()(config)
# The data commands: a group per declared resource, and export/import, through the client.
for _resource in RESOURCES:
    app.add_typer(resource_app(_resource), name=command_name(_resource))
app.add_typer(events_app(), name="events")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


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


def register_missing_server(app: typer.Typer, missing: str) -> None:
    """Stand-ins for the server's commands when its dependencies are not installed."""

    def unavailable() -> None:
        raise fail(
            f"the server is not installed (no module {missing!r}): pip install 'overplane[server]'"
        )

    for name in SERVER_COMMANDS:
        app.command(
            name,
            help="Needs the server: pip install 'overplane[server]'.",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(unavailable)


def server_commands() -> dict[str, Command]:
    """The server's commands, or stand-ins that say what to install when the server's
    dependencies are missing (the client alone: no database drivers, no ASGI server)."""
    commands = typer.Typer()
    try:
        from overplane.cli import server
    except ModuleNotFoundError as exc:
        register_missing_server(commands, exc.name or "?")
    else:
        server.register(commands)
    return dict(typer.main.get_group(commands).commands)


def main() -> None:
    """Entry point of the ``overplane`` console script."""
    app(prog_name="overplane")


if __name__ == "__main__":
    main()
