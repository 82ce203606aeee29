"""``overplane migrations new``: migrations written from the declarations, with literals only.

Covers: an unchanged tree gives no migration; no migration (shipped or written) imports
``overplane``; the RFC 3339 parsers frozen into migrations parse exactly as ``rfc3339.parse_ns``;
a written migration that changes a primary key and a unique constraint (a SQLite table rebuild),
adds a column and turns existing fields into time ranges (backfilled) applies on each backend,
keeps the rows, indexes and triggers, and leaves nothing more to write; clashing declarations
and broken extra modules are refused at import.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from overplane.cli.main import app as cli_app
from overplane.declarations import APPOINTMENT, PARTY_LINK, Field, Resource, check_unique
from overplane.declarations.extra import load_extra
from overplane.rfc3339 import parse_ns
from overplane.storage import migrate, migration_writer
from overplane.storage.schema import (
    FILTER_INDEX_PREFIX,
    Sequence64,
    metadata,
    object_table,
    time_column,
)
from tests.helpers import index_names, on_database

ROOT = Path(__file__).resolve().parent.parent

#: What a migration may import: the standard library, SQLAlchemy and Alembic, never overplane.
ALLOWED_IMPORTS = set(sys.stdlib_module_names) | {"sqlalchemy", "alembic"}


def imported_modules(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def assert_lint_clean(path: Path) -> None:
    """``path`` passes the project's ruff check and format check."""
    ruff = str(Path(sys.executable).with_name("ruff"))
    config = str(ROOT / "pyproject.toml")
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *args, "--config", config, str(path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_an_unchanged_tree_gives_no_migration(tmp_path: Path) -> None:
    """With the shipped declarations and migrations, the command writes nothing anywhere."""
    before = sorted(p.name for p in migrate.VERSIONS.iterdir())
    runner = CliRunner()

    shipped = runner.invoke(cli_app, ["migrations", "new", "-m", "noop"])
    elsewhere = runner.invoke(
        cli_app, ["migrations", "new", "-m", "noop", "--directory", str(tmp_path / "v")]
    )

    assert shipped.exit_code == 0, shipped.output
    assert shipped.output.strip() == "no changes"
    assert elsewhere.exit_code == 0, elsewhere.output
    assert elsewhere.output.strip() == "no changes"
    assert sorted(p.name for p in migrate.VERSIONS.iterdir()) == before
    assert list((tmp_path / "v").iterdir()) == []


def test_no_migration_imports_live_code() -> None:
    """History does not change when live code does: migrations import no overplane module."""
    migrations = sorted(migrate.VERSIONS.glob("[0-9]*.py"))
    assert len(migrations) >= 4
    for path in migrations:
        assert imported_modules(path) <= ALLOWED_IMPORTS, path.name


def load_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frozen_parsers() -> list[Callable[[str], int | None]]:
    """The parser frozen into migration 0002 and the one the writer copies into migrations."""
    shipped = load_file(next(migrate.VERSIONS.glob("0002_*.py")), "frozen_0002").parse_ns
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 - the writer's own template text, as a migration would run it
        "import re\nfrom datetime import UTC, datetime, timedelta, timezone\n"
        "import sqlalchemy as sa\nfrom alembic import op\n" + migration_writer.PARSE_NS_SOURCE,
        namespace,
    )
    return [shipped, namespace["parse_ns"]]


PARSED_EXAMPLES = [
    "2024-01-15T09:30:00Z",
    "2024-01-15t09:30:00z",
    "2024-01-15T09:30:00.123456789+02:00",
    "2024-01-15T09:30:00.1234567891Z",
    "2024-02-30T00:00:00Z",
    "2024-01-15T23:59:60Z",
    "2024-01-15T09:30:00+24:00",
    "2024-01-15T09:30:00-23:59",
    "2024-01-15 09:30:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999-00:00",
    "２０２４-01-15T09:30:00Z",
    "",
    "scheduled_time_example",
]
DATE_TIMES = st.from_regex(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,10})?([Zz]|[+-]\d{2}:\d{2})?", fullmatch=True
)


@pytest.mark.parametrize("value", PARSED_EXAMPLES)
def test_frozen_parsers_parse_as_rfc3339(value: str) -> None:
    """Backfills in migrations give ``field__us`` exactly what the server would store."""
    assert [parse(value) for parse in frozen_parsers()] == [parse_ns(value)] * 2


@hypothesis.given(st.one_of(DATE_TIMES, st.text(max_size=40)))
@hypothesis.settings(max_examples=300, deadline=None)
def test_frozen_parsers_agree_on_any_text(value: str) -> None:
    """The same on generated date-times and arbitrary text."""
    for parse in PARSERS:
        assert parse(value) == parse_ns(value)


PARSERS = frozen_parsers()


# --- a migration that changes existing tables ------------------------------------------------


def rekeyed_party_links(target: sa.MetaData, resource: Resource) -> sa.Table:
    """``resource``'s table with the primary key (account_id, seq) and unique (account_id, id).

    Whatever the shipped keys are, these differ from them: a primary key and a unique
    constraint change. ``seq`` is assigned by the test: SQLite numbers only a lone INTEGER
    PRIMARY KEY by itself.
    """
    table = sa.Table(
        resource.table_name,
        target,
        sa.Column("seq", Sequence64, nullable=False, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        *(sa.Column(f.name, sa.String(f.max_length), nullable=True) for f in resource.fields),
        *(
            sa.Column(time_column(f.name), sa.BigInteger(), nullable=True)
            for f in resource.time_range_fields
        ),
        sa.PrimaryKeyConstraint("account_id", "seq"),
        sa.UniqueConstraint("account_id", "id"),
    )
    name, scope = table.name, (table.c.account_id, table.c.livemode)
    sa.Index(f"ix_{name}_list", *scope, table.c.created_at, table.c.seq)
    sa.Index(f"ix_{name}_updated_at", *scope, table.c.updated_at)
    for f in resource.indexed_fields:
        prefix = sa.func.substr(table.c[f.name], 1, FILTER_INDEX_PREFIX)
        sa.Index(f"ix_{name}_{f.name}", *scope, prefix, table.c.created_at, table.c.seq)
    for f in resource.time_range_fields:
        sa.Index(f"ix_{name}_{time_column(f.name)}", *scope, table.c[time_column(f.name)])
    return table


def as_time_range(resource: Resource, name: str) -> Resource:
    fields = tuple(
        dataclasses.replace(f, time_range=f.name == name or f.time_range) for f in resource.fields
    )
    return dataclasses.replace(resource, fields=fields)


PARTY_TIMES = {1: "2024-01-15T09:30:00Z", 2: "not a time", 3: "2024-01-15T10:30:00.5+01:00"}
ACCOUNT = "acct_migration_writer"


def seed(table: str) -> Callable[[sa.Connection], None]:
    """Three objects with primary_party values (two RFC 3339), the second deleted."""

    def work(connection: sa.Connection) -> None:
        connection.execute(
            sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:id, :id, 0)"),
            {"id": ACCOUNT},
        )
        for seq, party in PARTY_TIMES.items():
            connection.execute(
                sa.text(
                    f"INSERT INTO {table} (seq, id, account_id, livemode, created_at, "
                    "updated_at, primary_role, primary_party) "
                    "VALUES (:seq, :id, :account, false, :seq, :seq, 'role', :party)"
                ),
                {"seq": seq, "id": f"obj_{seq}", "account": ACCOUNT, "party": party},
            )
        connection.execute(sa.text(f"DELETE FROM {table} WHERE seq = 2"))
        connection.commit()

    return work


def test_a_written_migration_rekeys_a_table_and_backfills_time_ranges(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """Keys changed (SQLite: a rebuild), columns added, time ranges backfilled, triggers kept."""
    url = fresh_database_url
    party_links = PARTY_LINK.table_name
    migrate.upgrade(url)
    on_database(url, seed(party_links))

    party = as_time_range(PARTY_LINK, "primary_party")
    appointment = as_time_range(
        dataclasses.replace(
            APPOINTMENT, fields=(*APPOINTMENT.fields, Field("room", "Where.", "room_example"))
        ),
        "customer_skype",
    )
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name not in {party_links, APPOINTMENT.table_name}:
            table.to_metadata(drifted)
    rekeyed = rekeyed_party_links(drifted, party)
    object_table(appointment, drifted)
    directory = tmp_path / "versions"

    written = migration_writer.write_migration(
        "rekey party links", drifted, [party, appointment], directory
    )

    assert written.path is not None
    assert written.summary == (
        f"changed table {party_links}",
        f"changed table {APPOINTMENT.table_name}",
    )
    assert imported_modules(written.path) <= ALLOWED_IMPORTS
    assert_lint_clean(written.path)
    migrate.upgrade(url, [directory])

    def inspect(connection: sa.Connection) -> dict[str, Any]:
        inspector = sa.inspect(connection)
        rows = connection.execute(
            sa.text(f"SELECT seq, id, primary_party__us FROM {party_links} ORDER BY seq")
        ).all()
        connection.execute(
            sa.text(
                f"INSERT INTO {party_links} (seq, id, account_id, livemode, created_at, "
                "updated_at) VALUES (4, 'obj_4', :account, false, 4, 4)"
            ),
            {"account": ACCOUNT},
        )
        connection.execute(sa.text(f"DELETE FROM {party_links} WHERE seq = 1"))
        total = connection.execute(
            sa.text("SELECT sum(n) FROM object_counts WHERE table_name = :t AND account_id = :a"),
            {"t": party_links, "a": ACCOUNT},
        ).scalar()
        tombstones = connection.execute(
            sa.text("SELECT id FROM object_tombstones WHERE account_id = :a ORDER BY id"),
            {"a": ACCOUNT},
        ).all()
        connection.commit()
        return {
            "rows": [tuple(r) for r in rows],
            "primary_key": inspector.get_pk_constraint(party_links)["constrained_columns"],
            "unique": sorted(
                u["column_names"] for u in inspector.get_unique_constraints(party_links)
            ),
            "indexes": index_names(connection),
            "appointment_columns": [
                c["name"] for c in inspector.get_columns(APPOINTMENT.table_name)
            ],
            "total": total,
            "tombstones": [r[0] for r in tombstones],
        }

    found = on_database(url, inspect)

    micros = {
        seq: (ns // 1000 if (ns := parse_ns(v)) is not None else None)
        for seq, v in PARTY_TIMES.items()
    }
    assert found["rows"] == [(1, "obj_1", micros[1]), (3, "obj_3", micros[3])]
    assert found["primary_key"] == ["account_id", "seq"]
    assert found["unique"] == [["account_id", "id"]]
    declared = {str(i.name) for t in drifted.tables.values() for i in t.indexes}
    assert declared - found["indexes"] == set()
    assert {"room", "customer_skype__us"} <= set(found["appointment_columns"])
    assert found["total"] == 2  # 3 created, 1 deleted before; 1 created, 1 deleted after
    assert found["tombstones"] == ["obj_1", "obj_2"]
    assert rekeyed.name in drifted.tables
    again = migration_writer.write_migration("again", drifted, [party, appointment], directory)
    assert again.path is None


# --- declarations that clash -----------------------------------------------------------------


def resource(name: str, module: str = "lab", id_prefix: str | None = None) -> Resource:
    return Resource(
        name=name,
        module=module,
        id_prefix=id_prefix or f"{name.replace('-', '_')}_",
        title=name,
        plural=name + "s",
        description=name,
        fields=(Field("label", "A label.", "label_example"),),
    )


@pytest.mark.parametrize(
    ("resources", "what"),
    [
        ((resource("gadget"), resource("gadget", id_prefix="other_")), "name"),
        ((resource("gadget"), resource("widget", id_prefix="gadget_")), "id prefix"),
        ((resource("x-y", module="lab"), resource("y", module="lab_x")), "table name"),
    ],
    ids=["name", "id-prefix", "table-name"],
)
def test_clashing_declarations_are_refused(resources: tuple[Resource, ...], what: str) -> None:
    """Two resources may not share a name (and so a path), an id prefix or a table."""
    check_unique(resources[:1])
    with pytest.raises(ValueError, match=f"share the {what} "):
        check_unique(resources)


def test_an_extra_module_must_declare_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OVERPLANE_EXTRA_RESOURCES naming a module without RESOURCES fails at start."""
    (tmp_path / "extra_without_resources.py").write_text("RESOURCES = ['not a resource']\n")
    (tmp_path / "extra_with_a_typo.py").write_text(
        "from overplane.declarations import Resource\nRESOURCES: tuple[Resource, ...] = ()\n"
        "MIGRATIONS = 'no/such/directory'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = "OVERPLANE_EXTRA_RESOURCES"

    assert load_extra({}).resources == ()
    with pytest.raises(ValueError, match="must declare RESOURCES"):
        load_extra({env: "extra_without_resources"})
    with pytest.raises(ValueError, match="is not a directory"):
        load_extra({env: " extra_with_a_typo "})


def test_an_additive_migration_is_undone_by_its_downgrade(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """A new object table and a new time-range field: downgrade removes them, upgrade again."""
    url = fresh_database_url
    migrate.upgrade(url)
    config = migrate.alembic_config(url)
    before = ScriptDirectory.from_config(config).get_current_head()
    assert before is not None
    gadget = resource("gadget")
    appointment = dataclasses.replace(
        APPOINTMENT,
        fields=(
            *APPOINTMENT.fields,
            Field("room", "Where.", "room_example", time_range=True, indexed=True),
        ),
    )
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name != APPOINTMENT.table_name:
            table.to_metadata(drifted)
    object_table(appointment, drifted)
    object_table(gadget, drifted)
    directory = tmp_path / "versions"
    written = migration_writer.write_migration(
        "add gadget", drifted, [PARTY_LINK, appointment, gadget], directory
    )
    assert written.path is not None
    assert_lint_clean(written.path)

    def shape(connection: sa.Connection) -> tuple[set[str], set[str], set[str]]:
        inspector = sa.inspect(connection)
        columns = {c["name"] for c in inspector.get_columns(APPOINTMENT.table_name)}
        return set(inspector.get_table_names()), columns, index_names(connection)

    original = on_database(url, shape)
    migrate.upgrade(url, [directory])
    upgraded = on_database(url, shape)
    alembic_command.downgrade(migrate.alembic_config(url, [directory]), before)
    downgraded = on_database(url, shape)
    migrate.upgrade(url, [directory])

    assert upgraded[0] - original[0] == {gadget.table_name}
    assert upgraded[1] - original[1] == {"room", "room__us"}
    assert {"ix_crm_appointment_room", "ix_crm_appointment_room__us"} <= upgraded[2]
    assert downgraded == original
    assert on_database(url, shape) == upgraded


def test_columns_are_written_as_literals() -> None:
    """Types with their SQLite variant, identity columns and nullability are spelled out."""
    numbered = sa.Column("seq", Sequence64, sa.Identity(), nullable=False)
    always = sa.Column("n", sa.BigInteger(), sa.Identity(always=True, start=10), nullable=False)
    plain = sa.Column("label", sa.String(5000), nullable=True)
    sa.Table("t", sa.MetaData(), numbered, always, plain)

    assert migration_writer.render_column(numbered) == (
        'sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), '
        "nullable=False)"
    )
    assert migration_writer.render_column(always) == (
        'sa.Column("n", sa.BigInteger(), sa.Identity(always=True, start=10), nullable=False)'
    )
    assert migration_writer.render_column(plain) == (
        'sa.Column("label", sa.String(5000), nullable=True)'
    )


def test_a_migration_that_only_drops_an_index_is_lint_clean(tmp_path: Path) -> None:
    """A field that stops being ``indexed``: the migration drops its index and names no
    SQLAlchemy type, so it must not import sqlalchemy either (ruff: unused import)."""
    appointment = dataclasses.replace(
        APPOINTMENT,
        fields=tuple(dataclasses.replace(f, indexed=False) for f in APPOINTMENT.fields),
    )
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name != APPOINTMENT.table_name:
            table.to_metadata(drifted)
    object_table(appointment, drifted)
    written = migration_writer.write_migration(
        "unindex appointments", drifted, [PARTY_LINK, appointment], tmp_path / "versions"
    )
    assert written.path is not None
    text = written.path.read_text()
    assert 'op.drop_index("ix_crm_appointment_status"' in text
    assert "import sqlalchemy" not in text
    assert_lint_clean(written.path)
