"""An online backup of a SQLite database: one consistent copy, taken while servers write.

SQLite's online backup API (``sqlite3.Connection.backup``) copies the file page by page, in
steps. On its own it restarts from the first page whenever another connection (a server
process) commits between two steps, so under a steady write load it might never finish (tried
here: 20,000 rows, 100-page steps, one insert between steps: no end). The copy therefore runs
inside one read transaction of the source connection: the backup then reads one snapshot, the
state of the last commit before it began, from first page to last, and never restarts. In WAL
mode (the server's) a reader blocks no writer, so servers keep serving meanwhile; the cost is
that their WAL cannot be checkpointed past that snapshot until the copy ends, so it grows by
what they write during the backup (docs/deployment.md, "Backup and restore").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Pages copied per step: 4 MiB of 4 KiB pages. Only the progress report's granularity
#: depends on it, since every step reads the same snapshot.
STEP_PAGES = 1024


class BackupFailed(Exception):
    """SQLite failed to copy, or the copy is not sound (its integrity check failed); nothing
    was kept."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup copied, how long it took, and the copy's integrity check."""

    pages: int
    size_bytes: int
    seconds: float
    #: ``ok``, or the first problem ``PRAGMA integrity_check`` reported; None if not checked.
    integrity: str | None


def backup_sqlite(
    source: str,
    target: Path,
    *,
    verify: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> BackupResult:
    """Copy the SQLite database at ``source`` to ``target`` (which must not exist), as one
    consistent snapshot, while other processes go on writing to it.

    The copy is written next to ``target`` and renamed into place only when it is complete
    and on disk, so ``target`` is either absent or a whole backup. It is a single file in
    rollback-journal mode (no ``-wal`` to carry along); a server opening it switches it back
    to WAL. ``progress(copied_pages, total_pages)`` is called after each step; ``verify``
    runs ``PRAGMA integrity_check`` on the copy, and a copy that fails it is deleted
    (:class:`BackupFailed`).
    """
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    if not Path(source).is_file():
        raise FileNotFoundError(f"no SQLite database at {source}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    began = time.monotonic()
    # mode=rw: a mistyped path fails instead of creating an empty database to back up.
    with contextlib.closing(
        sqlite3.connect(f"file:{source}?mode=rw", uri=True, isolation_level=None, timeout=10)
    ) as origin:
        origin.execute("BEGIN")
        origin.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot starts
        try:
            with contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as copy:

                def report(_status: int, remaining: int, total: int) -> None:
                    if progress is not None:
                        progress(total - remaining, total)

                origin.backup(copy, pages=STEP_PAGES, progress=report)
                copy.execute("PRAGMA journal_mode = DELETE")
                pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
                integrity = None
                if verify:
                    integrity = str(copy.execute("PRAGMA integrity_check").fetchone()[0])
                    if integrity != "ok":
                        raise BackupFailed(f"the copy failed its integrity check: {integrity}")
        except sqlite3.Error as exc:
            partial.unlink(missing_ok=True)
            raise BackupFailed(str(exc)) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            origin.execute("ROLLBACK")
    _durably_rename(partial, target)
    return BackupResult(pages, target.stat().st_size, time.monotonic() - began, integrity)


def _durably_rename(partial: Path, target: Path) -> None:
    """Flush ``partial`` to disk, rename it to ``target``, and flush the directory entry."""
    descriptor = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
