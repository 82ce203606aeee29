"""``overplane backup PATH``: a consistent copy of the SQLite database while servers run.

The copy itself is :func:`overplane.storage.backup.backup_sqlite` (one snapshot, servers keep
writing). PostgreSQL has its own tool for this, which knows its every object type; the
command names it rather than imitate it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from overplane.settings import Settings, SettingsError, redacted
from overplane.storage.backup import BackupFailed, backup_sqlite
from overplane.storage.database import is_postgres, sqlite_path

err = Console(stderr=True)


def backup(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Where to write the copy (must not exist).")
    ],
    verify: Annotated[
        bool,
        typer.Option(help="Check the copy (SQLite's integrity_check) and keep it only if sound."),
    ] = True,
) -> None:
    """Copy the SQLite database to PATH, consistently, while servers keep serving.

    On PostgreSQL, prints the pg_dump command to use instead and exits with status 2.
    """
    try:
        settings = Settings.from_environ()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    url = settings.database_url
    if is_postgres(url):
        err.print(
            f"{redacted(url)} is PostgreSQL: `overplane backup` copies SQLite files only. "
            "Use PostgreSQL's own tool (it is consistent while servers write):\n"
            f'  pg_dump --format=custom --file {path} "$OVERPLANE_DATABASE_URL"\n'
            "and to restore it into an empty database:\n"
            f'  pg_restore --no-owner --dbname "$OVERPLANE_DATABASE_URL" {path}',
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(code=2)
    source = sqlite_path(url)

    def progress(copied: int, total: int) -> None:
        if err.is_terminal:
            err.print(f"\r{copied * 100 // max(total, 1)}% of {total} pages", end="")

    try:
        result = backup_sqlite(source, path, verify=verify, progress=progress)
    except (BackupFailed, OSError) as exc:
        err.print(f"[red]error:[/red] backup failed: {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    checked = "integrity_check ok" if result.integrity else "not checked"
    err.print(
        f"\rBacked up {source} to {path}: {result.size_bytes / 2**20:.1f} MiB "
        f"({result.pages} pages) in {result.seconds:.1f} s, {checked}.",
        highlight=False,
        soft_wrap=True,
    )
