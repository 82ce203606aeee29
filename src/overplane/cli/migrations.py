"""``overplane migrations``: write the next schema migration from the declarations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from overplane import declarations
from overplane.storage import migration_writer
from overplane.storage.schema import metadata

migrations_app = typer.Typer(help="Write schema migrations.", no_args_is_help=True)
out = Console()


@migrations_app.command("new")
def new(
    message: Annotated[
        str, typer.Option("--message", "-m", help='What the migration does ("add invoice").')
    ],
    directory: Annotated[
        Path | None,
        typer.Option(
            help="Write here instead of the package's migrations/versions; migrations already "
            "there are applied first.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Write the migration that takes the schema to what the declarations derive.

    A scratch SQLite database is migrated to the newest revision and compared with the
    metadata; no database needs to be configured. Prints "no changes" and writes nothing when
    they already match.
    """
    written = migration_writer.write_migration(message, metadata, declarations.RESOURCES, directory)
    if written.path is None:
        out.print("no changes")
        return
    for line in written.summary:
        out.print(f"  {line}", highlight=False)
    out.print(f"wrote {written.path}", highlight=False, soft_wrap=True)
