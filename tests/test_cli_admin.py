"""The admin commands (``accounts``, ``keys``) and ``overplane config``.

Covers: ``--json`` prints one JSON document on standard output and nothing else there; every
command that opens the database names it on standard error; ``accounts list``; the default
SQLite file is the same whatever the working directory (``OVERPLANE_HOME`` or the XDG data
directory), and a stray ``./overplane.sqlite3`` of an earlier version is pointed out, not used;
``config`` shows every setting with secrets masked. The commands run in this process through
typer's runner, on each backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from overplane.cli.main import app
from overplane.settings import SETTINGS, Settings, SettingsError, default_home

runner = CliRunner()


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``overplane ARGS`` in this process with extra environment variables."""
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def database(fresh_database_url: str) -> dict[str, str | None]:
    """The environment of a command on a fresh database of each backend."""
    return {"OVERPLANE_DATABASE_URL": fresh_database_url}


def test_accounts_and_keys_as_json(database: dict[str, str | None]) -> None:
    created = invoke("accounts", "create", "acme", "--json", env=database)
    assert created.exit_code == 0, created.stderr
    account = json.loads(created.stdout)
    assert account["name"] == "acme"
    assert account["id"].startswith("acct_")
    assert "Database: " in created.stderr  # for people, never in the JSON

    key = json.loads(invoke("keys", "create", "--account", "acme", "--json", env=database).stdout)
    assert key["secret"].startswith("sk_test_")
    assert key["hint"] == f"sk_test_…{key['secret'][-4:]}"
    live = invoke("keys", "create", "--account", "acme", "--mode", "live", env=database)
    assert live.stdout.strip().startswith("sk_live_")  # without --json: the bare secret

    listed = json.loads(invoke("keys", "list", "--account", "acme", "--json", env=database).stdout)
    assert [k["mode"] for k in listed] == ["test", "live"]
    assert all("secret" not in k and k["revoked_at"] is None for k in listed)
    assert key["secret"] not in json.dumps(listed)

    revoked = invoke("keys", "revoke", key["id"], "--json", env=database)
    assert json.loads(revoked.stdout) == {"id": key["id"], "revoked": True}
    again = invoke("keys", "revoke", key["id"], "--json", env=database)
    assert again.exit_code == 1
    assert again.stdout == ""
    assert "no unrevoked key" in again.stderr

    invoke("accounts", "create", "globex", env=database)
    accounts = json.loads(invoke("accounts", "list", "--json", env=database).stdout)
    by_name = {a["name"]: a for a in accounts}
    assert by_name["acme"]["active_keys"] == {"test": 0, "live": 1}
    assert by_name["globex"]["active_keys"] == {"test": 0, "live": 0}
    assert [a["name"] for a in accounts][-2:] == ["acme", "globex"]  # oldest first

    table = invoke("accounts", "list", env=database)
    assert table.exit_code == 0
    assert account["id"] in table.stdout
    assert "globex" in table.stdout


def test_a_duplicate_account_fails_cleanly_with_json(database: dict[str, str | None]) -> None:
    assert invoke("accounts", "create", "acme", env=database).exit_code == 0
    duplicate = invoke("accounts", "create", "acme", "--json", env=database)
    assert duplicate.exit_code == 1
    assert duplicate.stdout == ""
    assert "already exists" in duplicate.stderr


def test_the_default_database_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands run from two directories open the same default file, in OVERPLANE_HOME;
    a ./overplane.sqlite3 of an earlier version is named, not used."""
    home = tmp_path / "home"
    env: dict[str, str | None] = {"OVERPLANE_DATABASE_URL": None, "OVERPLANE_HOME": str(home)}
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (second / "overplane.sqlite3").write_bytes(b"")  # an earlier version's default
    monkeypatch.chdir(first)
    assert invoke("accounts", "create", "acme", env=env).exit_code == 0
    monkeypatch.chdir(second)
    listed = invoke("accounts", "list", "--json", env=env)
    assert [a["name"] for a in json.loads(listed.stdout)] == ["acme"]
    database = home / "overplane.sqlite3"
    assert f"Database: {database} (SQLite)" in listed.stderr
    assert "./overplane.sqlite3 is not used" in listed.stderr
    assert (second / "overplane.sqlite3").read_bytes() == b""  # untouched
    assert oct(home.stat().st_mode & 0o777) == "0o700"


def test_the_default_home_follows_xdg() -> None:
    assert default_home({"HOME": "/home/ada"}) == "/home/ada/.local/share/overplane"
    assert default_home({"HOME": "/home/ada", "XDG_DATA_HOME": "/data"}) == "/data/overplane"
    # A relative XDG_DATA_HOME is invalid by the specification: ignored.
    assert default_home({"HOME": "/h", "XDG_DATA_HOME": "rel"}) == "/h/.local/share/overplane"
    settings = Settings.from_environ({"HOME": "/home/ada"})
    assert settings.database_url == "sqlite:////home/ada/.local/share/overplane/overplane.sqlite3"
    assert settings.database_is_default
    moved = Settings.from_environ({"OVERPLANE_HOME": "/srv/op"})
    assert moved.database_url == "sqlite:////srv/op/overplane.sqlite3"
    with pytest.raises(SettingsError, match="OVERPLANE_HOME"):
        Settings.from_environ({"OVERPLANE_HOME": "relative/dir"})
    explicit = Settings.from_environ({"OVERPLANE_DATABASE_URL": "sqlite:////x.sqlite3"})
    assert not explicit.database_is_default


def test_config_shows_every_setting_with_secrets_masked(tmp_path: Path) -> None:
    key = "sk_test_" + "a1" * 16
    env: dict[str, str | None] = {
        "OVERPLANE_DATABASE_URL": "postgresql://ada:hunter2@db.example:5432/overplane",
        "OVERPLANE_BOOTSTRAP_KEY": key,
        "OVERPLANE_EVENTS": "false",
        "OVERPLANE_HOME": str(tmp_path),
    }
    result = invoke("config", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [spec.env for spec in SETTINGS.values()] == list(shown)[: len(SETTINGS)]
    assert shown["OVERPLANE_DATABASE_URL"] == {
        "value": "postgresql://ada:***@db.example:5432/overplane",
        "source": "environment",
    }
    assert shown["OVERPLANE_BOOTSTRAP_KEY"]["value"] == f"sk_test_…{key[-4:]}"
    assert shown["OVERPLANE_EVENTS"] == {"value": False, "source": "environment"}
    assert shown["OVERPLANE_IDEMPOTENCY_TTL_HOURS"] == {"value": 24, "source": "default"}
    assert "hunter2" not in result.stdout + result.stderr
    assert key not in result.stdout + result.stderr
    assert not any(tmp_path.iterdir())  # config opens no database

    table = invoke("config", env={"OVERPLANE_HOME": str(tmp_path), "OVERPLANE_DATABASE_URL": None})
    assert f"sqlite:///{tmp_path}/overplane.sqlite3" in table.stdout
    assert "OVERPLANE_SHUTDOWN_TIMEOUT_SECONDS" in table.stdout


def test_config_names_a_bad_variable() -> None:
    result = invoke("config", env={"OVERPLANE_EVENTS": "maybe"})
    assert result.exit_code == 1
    assert "OVERPLANE_EVENTS" in result.stderr
