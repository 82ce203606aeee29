"""``overplane backup PATH`` (docs/deployment.md, "Backup and restore").

- Under a write load of a real ``overplane serve`` (slow): the backup taken while writers write
  holds every create acknowledged before it started, passes ``PRAGMA integrity_check``, and a
  server started on the restored file serves those objects with exact list totals.
- The copy is one snapshot even when another connection commits between its steps (which, in
  the plain backup API, restarts the copy from the first page, forever under steady writes).
- Clean failures: an existing target, a missing database; on PostgreSQL, the ``pg_dump``
  command to run and exit status 2.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from overplane.cli import main as cli
from overplane.declarations import RESOURCES
from overplane.storage import backup as storage_backup
from overplane.storage import migrate
from overplane.storage.backup import BackupFailed, backup_sqlite
from tests.helpers import ServerLauncher, in_process, run_cli, valid_body

APPOINTMENT = RESOURCES[-1]
WRITERS = 4


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def count_rows(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A migrated SQLite file with a few appointments written through the application."""
    path = tmp_path / "source.sqlite3"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    with in_process(url) as server:
        api = server.new_caller()
        for _ in range(5):
            api.create(APPOINTMENT)
    return path


def invoke(database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, args, env={"OVERPLANE_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_backup_copies_the_database_and_checks_it(filled: Path, tmp_path: Path) -> None:
    target = tmp_path / "backups" / "copy.sqlite3"
    target.parent.mkdir()
    code, output = invoke(f"sqlite:///{filled}", "backup", str(target))
    assert code == 0, output
    assert "integrity_check ok" in output
    assert integrity(target) == "ok"
    assert count_rows(target, APPOINTMENT.table_name) == 5
    # One file, no WAL to carry along, and nothing left beside it.
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.sqlite3"]
    with closing(sqlite3.connect(target)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_backup_refuses_an_existing_target_and_a_missing_database(
    filled: Path, tmp_path: Path
) -> None:
    target = tmp_path / "taken.sqlite3"
    target.write_bytes(b"keep me")
    code, output = invoke(f"sqlite:///{filled}", "backup", str(target))
    assert (code, target.read_bytes()) == (1, b"keep me")
    assert "already exists" in output
    assert "Traceback" not in output
    missing = tmp_path / "nowhere.sqlite3"
    code, output = invoke(f"sqlite:///{missing}", "backup", str(tmp_path / "new.sqlite3"))
    assert code == 1
    assert "no SQLite database" in output
    assert not missing.exists(), "a mistyped path must not create an empty database"
    assert not (tmp_path / "new.sqlite3").exists()


def test_backup_on_postgres_names_pg_dump(tmp_path: Path) -> None:
    url = "postgresql://overplane:s3cret@db.example:5432/overplane"
    dump = tmp_path / "overplane.dump"
    code, output = invoke(url, "backup", str(dump))
    assert code == 2
    assert f'pg_dump --format=custom --file {dump} "$OVERPLANE_DATABASE_URL"' in output
    assert "pg_restore" in output
    assert "s3cret" not in output


def test_backup_is_one_snapshot_while_another_connection_commits(
    filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection commits between every two steps of the copy: the copy still ends in
    one pass (no restart) and holds the database as it was when it began."""
    monkeypatch.setattr(storage_backup, "STEP_PAGES", 2)
    table = APPOINTMENT.table_name
    before = count_rows(filled, table)
    steps: list[int] = []
    with closing(sqlite3.connect(filled, isolation_level=None)) as writer:
        row = writer.execute(f"SELECT * FROM {table} LIMIT 1").fetchone()
        columns = [d[0] for d in writer.execute(f"SELECT * FROM {table} LIMIT 0").description]

        def commit_between_steps(copied: int, total: int) -> None:
            steps.append(copied)
            assert len(steps) < 1000, "the copy keeps restarting"
            values = dict(zip(columns, row, strict=True))
            values["id"] = f"{values['id']}x{len(steps)}"
            values["seq"] = int(values["seq"]) + 1000 + len(steps)
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            writer.execute(
                f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values.values())
            )

        result = backup_sqlite(
            str(filled), tmp_path / "snap.sqlite3", progress=commit_between_steps
        )
    assert len(steps) > 3
    assert steps == sorted(steps), "the copy went back to the first page"
    assert result.integrity == "ok"
    assert count_rows(tmp_path / "snap.sqlite3", table) == before
    assert count_rows(filled, table) == before + len(steps)


def test_a_failed_copy_leaves_nothing(filled: Path, tmp_path: Path) -> None:
    target = tmp_path / "broken.sqlite3"

    def fail(_copied: int, _total: int) -> None:
        raise BackupFailed("stopped by the test")

    with pytest.raises(BackupFailed):
        backup_sqlite(str(filled), target, progress=fail)
    assert sorted(p.name for p in tmp_path.iterdir() if "broken" in p.name) == []


# --- under load, with real servers --------------------------------------------------------


def create_until(
    stop: threading.Event, client: httpx.Client, acknowledged: list[tuple[str, float]]
) -> None:
    """Create appointments until ``stop``; record each acknowledged id and when it was."""
    while not stop.is_set():
        response = client.post(APPOINTMENT.path, json=valid_body(APPOINTMENT))
        assert response.status_code == 201, response.text
        acknowledged.append((response.json()["id"], time.monotonic()))


def listed_ids(client: httpx.Client) -> tuple[set[str], int]:
    """Every appointment id of the caller, page by page by cursor, and the reported total."""
    ids: set[str] = set()
    params: dict[str, str | int] = {"limit": 100}
    total = -1
    while True:
        page = client.get(APPOINTMENT.path, params=params).json()
        total = page["total"] if total < 0 else total
        ids |= {item["id"] for item in page["data"]}
        if not page["has_more"]:
            return ids, total
        params["starting_after"] = page["data"][-1]["id"]


@pytest.mark.slow
def test_backup_under_write_load_round_trip(tmp_path: Path, start_server: ServerLauncher) -> None:
    """Writers create appointments through a real server without pause; ``overplane backup``
    runs meanwhile. The copy passes ``PRAGMA integrity_check``; a server started on it (the
    restore: the copy put in place of the database) serves every create acknowledged before the
    backup started, and its list total counts exactly the objects it has."""
    source = tmp_path / "live.sqlite3"
    url = f"sqlite:///{source}"
    server, key = start_server.with_new_key(url)
    stop = threading.Event()
    logs: list[list[tuple[str, float]]] = [[] for _ in range(WRITERS)]
    clients = [server.client(key) for _ in logs]
    backup = tmp_path / "backup.sqlite3"
    try:
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            writers = [
                pool.submit(create_until, stop, c, log)
                for c, log in zip(clients, logs, strict=True)
            ]
            try:
                time.sleep(2.0)
                started = time.monotonic()
                result = run_cli(url, "backup", str(backup))
                ended = time.monotonic()
                time.sleep(0.5)
            finally:
                stop.set()
                for writer in writers:
                    writer.result()
    finally:
        for client in clients:
            client.close()
    assert result.returncode == 0, result.stderr
    acknowledged = [entry for log in logs for entry in log]
    before = {object_id for object_id, at in acknowledged if at < started}
    during = [object_id for object_id, at in acknowledged if started <= at <= ended]
    print(
        f"\nbackup under load: {len(before)} creates before it, {len(during)} during it "
        f"({ended - started:.2f} s); {result.stderr.strip()}"
    )
    assert before, "the writers were not writing before the backup"
    assert during, "the writers were not writing during the backup"
    assert integrity(backup) == "ok"

    restored = tmp_path / "restored" / "overplane.sqlite3"
    restored.parent.mkdir()
    shutil.copyfile(backup, restored)
    again = start_server(f"sqlite:///{restored}", "--no-migrate", OVERPLANE_BOOTSTRAP_KEY=key)
    with again.client(key) as client:
        ids, total = listed_ids(client)
    assert before <= ids, f"{len(before - ids)} acknowledged creates are missing"
    assert total == len(ids)
    assert ids <= {object_id for object_id, _ in acknowledged}
