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

from typing import Annotated

import typer

from overplane import __version__
from overplane.cli.config import config
from overplane.cli.data import command_name, events_app, resource_app
from overplane.cli.listen import listen
from overplane.cli.output import fail
from overplane.cli.transfer import export_app, import_app
from overplane.declarations import RESOURCES

app = typer.Typer(help="The Overplane API server.", no_args_is_help=True, add_completion=False)
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

    for name in ("serve", "migrate", "worker", "accounts", "keys", "migrations"):
        app.command(
            name,
            help="Needs the server: pip install 'overplane[server]'.",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(unavailable)


try:
    from overplane.cli import server
except ModuleNotFoundError as exc:  # the client alone: no database drivers, no ASGI server
    register_missing_server(app, exc.name or "?")
else:
    server.register(app)


def main() -> None:
    """Entry point of the ``overplane`` console script."""
    app(prog_name="overplane")


if __name__ == "__main__":
    main()
