"""The data commands (``overplane appointments …``, ``party-links``, ``export``, ``import``)
against a real server over TCP on each backend, through the client: no part of ours mocked.

Covers: each command of each declared resource with ``--json`` and as a table; filters,
ranges and ``--all``; readable errors (status, code, message, param) with exit status 1;
import's per-row outcomes (created, already there, rejected with the row's number and field),
its rerun creating nothing twice and creating a fixed row, and export equal to the import;
and (slow) an import of 100,000 rows killed half-way with SIGKILL and run again: exactly
100,000 objects, and an export equal to the file.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from overplane.cli.main import app
from overplane.cli.transfer import row_key
from overplane.declarations import APPOINTMENT, PARTY_LINK, Resource
from tests.helpers import (
    OVERPLANE,
    DroppingProxy,
    ProxiedRequest,
    Server,
    ServerLauncher,
    served_over_tcp,
)

runner = CliRunner()
#: The columns of the imported test files (each row unique by customer_name).
COLUMNS = ["customer_name", "scheduled_time", "status", "customer_email", "customer_details"]


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    """The application on each backend, over real TCP (one per module and backend)."""
    with served_over_tcp(database_url) as url:
        yield url


@pytest.fixture
def env(server: Server, base_url: str) -> dict[str, str]:
    """The environment of a data command: a brand-new account's key and the server's URL."""
    return {"OVERPLANE_API_KEY": server.new_caller().key, "OVERPLANE_BASE_URL": base_url}


def invoke(env: dict[str, str], *args: str) -> Result:
    """``overplane ARGS`` in this process with ``env``."""
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def ok_json(env: dict[str, str], *args: str) -> Any:
    """The JSON printed by a command that must succeed."""
    result = invoke(env, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def command(resource: Resource) -> str:
    return resource.plural.replace(" ", "-")


def create_options(resource: Resource, **values: str) -> list[str]:
    """``--field value`` for every required field (the declaration's example) and ``values``."""
    given = {f.name: f.example for f in resource.required_fields} | values
    return [
        part for name, value in given.items() for part in (f"--{name.replace('_', '-')}", value)
    ]


@pytest.mark.parametrize("resource", [APPOINTMENT, PARTY_LINK], ids=lambda r: r.name)
def test_each_command_of_a_resource(env: dict[str, str], resource: Resource) -> None:
    group = command(resource)
    optional = next(f for f in resource.fields if not f.required)
    created = ok_json(env, group, "create", *create_options(resource, **{optional.name: "x"}))
    assert created["id"].startswith(resource.id_prefix)
    assert created[optional.name] == "x"
    assert ok_json(env, group, "get", created["id"]) == created

    listed = ok_json(env, group, "list")
    assert listed == {"data": [created], "has_more": False, "total": 1}
    table = invoke(env, group, "list")
    assert table.exit_code == 0
    assert created["id"] in table.stdout
    assert "1 of 1" in table.stderr

    required = resource.required_fields[0].name
    updated = ok_json(
        env, group, "update", created["id"], f"--{required.replace('_', '-')}", "changed",
        "--clear", optional.name,
    )  # fmt: skip
    assert updated[required] == "changed"
    assert updated[optional.name] is None
    shown = invoke(env, group, "get", created["id"])
    assert "changed" in shown.stdout

    deleted = ok_json(env, group, "delete", created["id"], "--yes")
    assert deleted == {"id": created["id"], "deleted": True}
    missing = invoke(env, group, "get", created["id"])
    assert missing.exit_code == 1
    assert "404 resource_missing" in missing.stderr
    assert "(param: id)" in missing.stderr


def test_list_filters_ranges_and_every_page(env: dict[str, str]) -> None:
    for day in range(1, 26):
        status = "draft" if day % 2 else "confirmed"
        options = create_options(
            APPOINTMENT, scheduled_time=f"2024-01-{day:02d}T09:00:00Z", status=status
        )
        if day == 1:
            options += ["--party", "p_1"]
        assert invoke(env, "appointments", "create", *options).exit_code == 0

    drafts = ok_json(env, "appointments", "list", "--status", "draft", "--limit", "100")
    assert drafts["total"] == 13
    ranged = ok_json(
        env, "appointments", "list",
        "--scheduled-time-gte", "2024-01-10T00:00:00Z", "--scheduled-time-lt", "2024-01-20T00:00:00Z",
    )  # fmt: skip
    assert ranged["total"] == 10
    assert {a["scheduled_time"][:10] for a in ranged["data"]} == {
        f"2024-01-{day}" for day in range(10, 20)
    }
    assert ok_json(env, "appointments", "list", "--not-null", "party")["total"] == 1
    assert ok_json(env, "appointments", "list", "--null", "party")["total"] == 24

    page = ok_json(env, "appointments", "list", "--limit", "10")
    assert (len(page["data"]), page["has_more"], page["total"]) == (10, True, 25)
    every = ok_json(env, "appointments", "list", "--all", "--limit", "7")
    assert (len(every["data"]), every["has_more"], every["total"]) == (25, False, 25)
    assert len({a["id"] for a in every["data"]}) == 25
    after = ok_json(env, "appointments", "list", "--starting-after", page["data"][-1]["id"])
    assert after["data"][0] == every["data"][10]

    table = invoke(env, "appointments", "list", "--columns", "id,status", "--limit", "3")
    assert "10 of 25" not in table.stderr
    assert "3 of 25" in table.stderr
    assert "customer_email" not in table.stdout


def test_events_list_and_get(env: dict[str, str]) -> None:
    created = ok_json(env, "party-links", "create", "--primary-role", "owner")
    ok_json(env, "party-links", "update", created["id"], "--primary-role", "member")
    events = ok_json(env, "events", "list", "--type", "party_link.*", "--created-at-gte",
                     "2000-01-01T00:00:00Z")  # fmt: skip
    assert [e["type"] for e in events["data"]] == ["party_link.updated", "party_link.created"]
    assert events["total"] == 2
    one = ok_json(env, "events", "get", events["data"][0]["id"])
    assert one["data"]["previous_attributes"] == {"primary_role": "owner"}
    table = invoke(env, "events", "list", "--all", "--limit", "1")
    assert "party_link.created" in table.stdout
    assert "2 of 2 events" in table.stderr


def test_errors_are_one_readable_line_and_exit_1(env: dict[str, str], base_url: str) -> None:
    bad_filter = invoke(env, "appointments", "list", "--created-at-gte", "yesterday")
    assert bad_filter.exit_code == 1
    assert "400 parameter_invalid" in bad_filter.stderr
    assert "(param: created_at[gte])" in bad_filter.stderr
    assert "[request req_" in bad_filter.stderr
    assert "Traceback" not in bad_filter.stderr

    blank = invoke(env, "appointments", "create", *create_options(APPOINTMENT, status=" "))
    assert blank.exit_code == 1
    assert "(param: status)" in blank.stderr

    missing_option = invoke(env, "appointments", "create", "--customer-name", "Ada")
    assert missing_option.exit_code == 2  # told before anything is sent
    assert "--scheduled-time" in missing_option.stderr

    created = ok_json(env, "party-links", "create", "--primary-role", "owner")
    stale = invoke(env, "party-links", "update", created["id"], "--if-match", "1", "--status", "x")
    assert stale.exit_code == 2  # party links have no status field: a usage error
    stale = invoke(env, "party-links", "update", created["id"], "--if-match", "1")
    assert stale.exit_code == 1
    assert "412 precondition_failed" in stale.stderr

    wrong_key = invoke(env | {"OVERPLANE_API_KEY": "sk_test_" + "0" * 32}, "appointments", "list")
    assert wrong_key.exit_code == 1
    assert "401 api_key_invalid" in wrong_key.stderr

    no_key = runner.invoke(
        app, ["appointments", "list"], env={"OVERPLANE_API_KEY": "", "OVERPLANE_BASE_URL": base_url}
    )
    assert no_key.exit_code == 1
    assert "no API key" in no_key.stderr

    port = base_url.rsplit(":", 1)[1]
    unreachable = invoke(env, "appointments", "list", "--base-url", "http://127.0.0.1:9")
    assert unreachable.exit_code == 1
    assert "cannot reach the API at http://127.0.0.1:9" in unreachable.stderr
    assert port  # the real server is untouched


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def appointment_row(number: int, **changes: str) -> list[str]:
    """A row of the test files: unique by name, some details with commas, quotes, newlines."""
    values = {
        "customer_name": f"Customer {number}",
        "scheduled_time": f"2024-{number % 12 + 1:02d}-{number % 28 + 1:02d}T09:30:00Z",
        "status": ("draft", "confirmed", "cancelled")[number % 3],
        "customer_email": f"c{number}@example.com",
        "customer_details": 'a "note", with\na newline' if number % 7 == 0 else "",
    } | changes
    return [values[c] for c in COLUMNS]


def test_import_reports_rows_and_a_rerun_creates_nothing_twice(
    env: dict[str, str], tmp_path: Path
) -> None:
    rows = [appointment_row(n) for n in range(40)]
    rows[5] = appointment_row(5, status="")  # a required field left empty: rejected
    rows[9] = appointment_row(9, customer_email="x" * 1001)  # too long: rejected
    path = tmp_path / "appointments.csv"
    write_csv(path, rows)
    report = tmp_path / "rejected.csv"

    first = invoke(env, "import", "appointments", str(path), "--rejected", str(report), "--json")
    assert first.exit_code == 1  # rows were rejected
    summary = json.loads(first.stdout)
    assert {k: summary[k] for k in ("rows", "created", "already_there", "rejected")} == {
        "rows": 40,
        "created": 38,
        "already_there": 0,
        "rejected": 2,
    }
    with report.open() as handle:
        rejected = list(csv.DictReader(handle))
    # Spreadsheet row numbers: the header is row 1, so rows[5] is row 7.
    # (in the order the answers came: rows are sent concurrently)
    assert sorted((int(r["row"]), r["field"]) for r in rejected) == [
        (7, "status"),
        (11, "customer_email"),
    ]
    assert "row 7: status:" in first.stderr

    again = invoke(env, "import", "appointments", str(path), "--json", "--concurrency", "3")
    assert json.loads(again.stdout)["already_there"] == 38
    assert json.loads(again.stdout)["created"] == 0
    assert ok_json(env, "appointments", "list")["total"] == 38

    rows[5] = appointment_row(5)  # fixed in place: a new key, so created now
    rows[9] = appointment_row(9)
    write_csv(path, rows)
    fixed = invoke(env, "import", "appointments", str(path))
    assert fixed.exit_code == 0, fixed.stderr
    assert "2 created, 38 already there, 0 rejected" in fixed.stderr

    exported = tmp_path / "export.csv"
    done = invoke(env, "export", "appointments", "--output", str(exported), "--quiet")
    assert done.exit_code == 0, done.stderr
    with exported.open(newline="") as handle:
        back = [[row[c] for c in COLUMNS] for row in csv.DictReader(handle)]
    assert sorted(back) == sorted(rows)

    as_jsonl = tmp_path / "export.jsonl"
    assert (
        invoke(env, "export", "appointments", "-o", str(as_jsonl), "--status", "draft").exit_code
        == 0
    )
    drafts = [json.loads(line) for line in as_jsonl.read_text().splitlines()]
    assert len(drafts) == sum(1 for r in rows if r[2] == "draft")
    assert all(d["customer_details"] is None or "\n" in d["customer_details"] for d in drafts)
    assert not (tmp_path / "export.jsonl.partial").exists()


def test_jsonl_round_trip_keeps_nulls_and_empty_strings(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "links.jsonl"
    lines = [
        {"primary_role": "owner", "secondary_role": "", "primary_party": None},
        {"primary_role": "member", "secondary_party": "p_ü"},
        {"primary_role": "x", "nonsense": "1"},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")
    result = invoke(env, "import", "party-links", str(source), "--json")
    assert json.loads(result.stdout)["created"] == 2
    assert json.loads(result.stdout)["rejected"] == 2
    assert "row 3: nonsense:" in result.stderr
    assert "row 4: not JSON" in result.stderr

    exported = tmp_path / "links-export.jsonl"
    assert invoke(env, "export", "party-links", "-o", str(exported)).exit_code == 0
    back = [json.loads(line) for line in exported.read_text().splitlines()]
    assert {b["primary_role"]: b["secondary_role"] for b in back} == {"owner": "", "member": None}
    to_stdout = invoke(env, "export", "party-links", "--format", "csv", "--quiet")
    csv_lines = to_stdout.stdout.splitlines()
    assert (
        csv_lines[0]
        == "id,created_at,updated_at,primary_role,secondary_role,primary_party,secondary_party"
    )
    assert len(csv_lines) == 3
    # An export imports as it is: id and the timestamps are the server's, and are skipped.
    again = invoke(env, "import", "party-links", str(exported), "--json")
    assert json.loads(again.stdout)["created"] == 2


def test_an_unreadable_file_stops_cleanly(env: dict[str, str], tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"primary_role\nowner\nm\xe9nager\n")
    result = invoke(env, "import", "party-links", str(latin1))
    assert result.exit_code == 1
    assert "is not UTF-8 text" in result.stderr
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("primary_role,colour\nowner,red\n")
    result = invoke(env, "import", "party-links", str(unknown))
    assert result.exit_code == 1
    assert "unknown column(s) colour" in result.stderr
    assert ok_json(env, "party-links", "list")["total"] <= 1  # nothing from the second file
    no_format = tmp_path / "rows.txt"
    no_format.write_text("primary_role\nowner\n")
    assert "--format" in invoke(env, "import", "party-links", str(no_format)).stderr


def test_the_key_of_a_row_depends_on_its_file_name_number_and_content() -> None:
    key = row_key(APPOINTMENT, "a.csv", 2, {"status": "draft"})
    assert key == row_key(APPOINTMENT, "a.csv", 2, {"status": "draft"})
    assert key.startswith("import_")
    assert len(key) <= 255
    others = {
        row_key(APPOINTMENT, "b.csv", 2, {"status": "draft"}),
        row_key(APPOINTMENT, "a.csv", 3, {"status": "draft"}),
        row_key(APPOINTMENT, "a.csv", 2, {"status": "confirmed"}),
        row_key(PARTY_LINK, "a.csv", 2, {"status": "draft"}),
    }
    assert key not in others
    assert len(others) == 4


def test_a_row_whose_answer_was_lost_is_retried_and_counted_as_created(
    env: dict[str, str], base_url: str, tmp_path: Path
) -> None:
    """The server created the row but its answer never came: the client sends it again, the
    server replays, and the row counts as created (by this run), not as already there."""
    dropped = {0, 3}  # the first and the fourth POST

    def drop(request: ProxiedRequest, number: int) -> bool:
        return request.method == "POST" and number in dropped

    proxy = DroppingProxy(base_url, drop)
    try:
        path = tmp_path / "lost.csv"
        write_csv(path, [appointment_row(n) for n in range(10)])
        result = invoke(env | {"OVERPLANE_BASE_URL": proxy.url}, "import", "appointments",
                        str(path), "--json", "--concurrency", "1")  # fmt: skip
    finally:
        proxy.close()
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["already_there"]) == (10, 0)
    assert len([r for r in proxy.requests if r.method == "POST"]) == 12
    assert ok_json(env, "appointments", "list")["total"] == 10


# --- an interrupted import of 100,000 rows ------------------------------------------------

ROWS = 100_000


def total(base_url: str, key: str) -> int:
    response = httpx.get(
        base_url + APPOINTMENT.path,
        params={"limit": "1"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    count: int = response.json()["total"]
    return count


@pytest.mark.slow
def test_an_import_killed_half_way_and_run_again_creates_each_row_once(
    fresh_database_url: str, start_server: ServerLauncher, tmp_path: Path
) -> None:
    served, key = start_server.with_new_key(fresh_database_url, OVERPLANE_ACCESS_LOG="false")
    path = tmp_path / "appointments.csv"
    rows = [appointment_row(n) for n in range(ROWS)]
    write_csv(path, rows)
    environ = {**os.environ, "OVERPLANE_API_KEY": key, "OVERPLANE_BASE_URL": served.base_url}
    command = [*OVERPLANE, "import", "appointments", str(path), "--quiet", "--json"]

    first = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while total(served.base_url, key) < ROWS // 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = total(served.base_url, key)
    assert ROWS // 2 <= killed_at < ROWS

    second = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=900, check=False
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["rows"] == ROWS
    assert summary["rejected"] == summary["failed"] == 0
    assert summary["created"] + summary["already_there"] == ROWS
    assert summary["already_there"] >= killed_at  # at least every row the first run created
    assert total(served.base_url, key) == ROWS

    exported = tmp_path / "export.csv"
    result = subprocess.run(
        [*OVERPLANE, "export", "appointments", "--output", str(exported), "--quiet"],
        env=environ, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with exported.open(newline="") as handle:
        back = [[row[c] for c in COLUMNS] for row in csv.DictReader(handle)]
    assert len(back) == ROWS
    assert sorted(back) == sorted(rows)  # every field of every row, and no duplicates


#: A fresh interpreter where the server's dependencies cannot be imported, as after
#: ``pip install overplane`` (the client alone), running ``overplane ARGS``.
WITHOUT_SERVER = """
import importlib.abc, sys
BLOCKED = {"sqlalchemy", "alembic", "asyncpg", "starlette", "uvicorn", "granian", "msgspec"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
from overplane.cli.main import main
sys.argv = ["overplane", *sys.argv[1:]]
main()
"""


def test_the_data_commands_work_with_the_client_alone(env: dict[str, str]) -> None:
    def overplane(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_SERVER, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = overplane("appointments", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == 0
    serve = overplane("serve", "--port", "1")
    assert serve.returncode == 1
    assert "pip install 'overplane[server]'" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_the_command_loads_the_server_only_for_its_commands() -> None:
    """A data command starts without the server's modules (about 0.65 s of start-up);
    asking for a server command, or the help that lists it, loads them."""
    program = (
        "import sys\n"
        "from overplane.cli.main import app\n"
        "from typer.main import get_command\n"
        "group = get_command(app)\n"
        "print('sqlalchemy' in sys.modules, end=' ')\n"
        "ctx = group.context_class(group)\n"
        "group.get_command(ctx, 'appointments')\n"
        "print('sqlalchemy' in sys.modules, end=' ')\n"
        "print(group.get_command(ctx, 'migrate') is not None, 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "False", "True", "True"], done.stderr
