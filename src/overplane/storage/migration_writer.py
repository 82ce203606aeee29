"""Write the next migration from the difference between the migrated schema and the metadata.

``overplane migrations new`` calls :func:`write_migration`: it migrates a scratch SQLite file to
the newest revision, compares what is there with the metadata ``storage/schema.py`` derives from
the declarations, and writes a migration that closes the gap. The file holds literal values
only (columns, indexes, the trigger DDL of both dialects, the RFC 3339 parser a backfill needs)
and imports only ``sqlalchemy``, ``alembic.op`` and the standard library, never ``overplane``, so
the history it records does not change when live code does.

Alembic's autogenerate skips expression indexes (our filter indexes are on
``substr(field, 1, 100)``) and cannot see triggers, so this is a small differ of its own for
what our metadata can contain: tables, columns (name, type, nullability), primary keys, unique
constraints, foreign keys, indexes (plain or on expressions) and the counter triggers of
object tables.

What it writes for each kind of difference:

- a new table: ``create_table`` with its constraints, its indexes and, for an object table,
  its triggers (nothing to backfill: the table is empty);
- a table no longer declared: ``drop_table`` (expand, then contract: see docs/deployment.md);
- new or removed columns and indexes of a table that otherwise stays the same: ``add_column``,
  ``ALTER TABLE … DROP COLUMN``, ``create_index``, ``drop_index``; a new ``field__us`` column
  whose field already existed is backfilled from the field's RFC 3339 values;
- a changed column type or nullability, primary key, unique constraint or foreign key: on
  PostgreSQL ``ALTER TABLE`` (constraints are named as PostgreSQL names them by default); on
  SQLite, which cannot alter constraints, a rebuild of the table (create, copy, drop, rename)
  that then re-creates its indexes and triggers;
- triggers that are missing or differ from storage/triggers.py (compared on SQLite's text):
  dropped and created again; an existing table that gets its triggers for the first time gets
  its counters backfilled from its rows.

The scratch database is SQLite, so a difference visible only on PostgreSQL (the text of the
PostgreSQL trigger function, say) is not detected.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import sqlite

from overplane.declarations import Resource
from overplane.storage import migrate, triggers
from overplane.storage.schema import COUNTED_TABLES, time_column

_SQLITE = sqlite.dialect()
_DIALECTS = ("postgresql", "sqlite")

#: The RFC 3339 parser a ``field__us`` backfill runs, copied into each migration that needs it
#: (tests/test_migration_writer.py checks that it parses exactly as overplane.rfc3339.parse_ns).
PARSE_NS_SOURCE = '''
_DATE_TIME = re.compile(
    r"(\\d{4})-(\\d{2})-(\\d{2})[Tt](\\d{2}):(\\d{2}):(\\d{2})(?:\\.(\\d{1,9}))?"
    r"(?:([Zz])|([+-])(\\d{2}):(\\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ns(value: str) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 date-time, or None if it is not one."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        if zulu:
            zone = UTC
        else:
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None
    whole = moment - _EPOCH
    seconds = whole.days * 86_400 + whole.seconds
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _backfill_time_column(table: str, field: str, column: str) -> None:
    bind = op.get_bind()
    select = sa.text(f"SELECT seq, {field} FROM {table} WHERE {field} IS NOT NULL")
    update = sa.text(f"UPDATE {table} SET {column} = :us WHERE seq = :seq")
    for seq, value in bind.execute(select).fetchall():
        ns = parse_ns(value)
        if ns is not None:
            bind.execute(update, {"us": ns // 1000, "seq": seq})
'''

_TRIGGER_HELPER = """
def _run(statements: dict[str, dict[str, list[str]]], table: str) -> None:
    for statement in statements[op.get_bind().dialect.name][table]:
        op.execute(statement)
"""


# --- shapes: what a table is made of, read from the database or from the metadata ------------


@dataclass(frozen=True, slots=True)
class ColumnShape:
    """A column as the comparison sees it: its SQLite type text and nullability."""

    type: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class IndexShape:
    """An index: its elements (column names or normalised expressions) and uniqueness."""

    elements: tuple[str, ...]
    unique: bool


ForeignKey = tuple[tuple[str, ...], str, tuple[str, ...]]


@dataclass(slots=True)
class TableShape:
    """Everything the differ compares of one table."""

    columns: dict[str, ColumnShape]
    primary_key: tuple[str, ...]
    unique: frozenset[tuple[str, ...]]
    foreign_keys: frozenset[ForeignKey]
    indexes: dict[str, IndexShape] = field(default_factory=dict)
    #: Trigger name → its SQL, whitespace collapsed.
    triggers: dict[str, str] = field(default_factory=dict)


def _normalised(sql: str) -> str:
    return re.sub(r"\s+", "", sql.replace('"', "")).lower()


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [*parts, current]


_CREATE_INDEX = re.compile(
    r"CREATE\s+(UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON\s+\S+\s*\((.*)\)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TRIGGER_NAME = re.compile(r"CREATE\s+TRIGGER\s+(\w+)", re.IGNORECASE)


def _collapsed(sql: str) -> str:
    return " ".join(sql.split())


def database_shapes(connection: sa.Connection) -> dict[str, TableShape]:
    """The shape of every table of a SQLite database (``alembic_version`` left out).

    Indexes and triggers are read from ``sqlite_master`` because SQLAlchemy does not reflect
    expression indexes.
    """
    with warnings.catch_warnings():
        # SQLAlchemy warns that it skips the expression indexes; they are read below.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        shapes = _reflected_tables(sa.inspect(connection))
    rows = connection.execute(
        sa.text("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    )
    for kind, name, table, sql in rows:
        if table not in shapes:
            continue
        if kind == "index":
            match = _CREATE_INDEX.match(sql)
            if match is None:
                raise ValueError(f"cannot read the definition of index {name}: {sql}")
            elements = tuple(_normalised(e) for e in _split_top_level(match.group(2)))
            shapes[table].indexes[name] = IndexShape(elements, bool(match.group(1)))
        elif kind == "trigger":
            shapes[table].triggers[name] = _collapsed(sql)
    return shapes


def _reflected_tables(inspector: sa.Inspector) -> dict[str, TableShape]:
    shapes: dict[str, TableShape] = {}
    for name in inspector.get_table_names():
        if name == "alembic_version":
            continue
        shapes[name] = TableShape(
            columns={
                c["name"]: ColumnShape(str(c["type"]).upper(), bool(c["nullable"]))
                for c in inspector.get_columns(name)
            },
            primary_key=tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            unique=frozenset(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            ),
            foreign_keys=frozenset(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(name)
            ),
        )
    return shapes


def _index_elements(index: sa.Index) -> list[tuple[str, bool]]:
    """Each element of ``index`` as CREATE INDEX spells it, and whether it is a plain column.

    Read back from the DDL SQLAlchemy compiles for SQLite (no table prefixes, literal values),
    the same way the database's own index definitions are read.
    """
    ddl = str(sa.schema.CreateIndex(index).compile(dialect=_SQLITE))
    match = _CREATE_INDEX.match(ddl)
    if match is None:
        raise ValueError(f"cannot read the definition of index {index.name}: {ddl}")
    columns = {c.name for c in index.table.columns} if index.table is not None else set()
    elements = [e.strip().strip('"') for e in _split_top_level(match.group(2))]
    return [(e, e in columns) for e in elements]


def _unique_sets(table: sa.Table) -> frozenset[tuple[str, ...]]:
    found = {
        tuple(c.name for c in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    }
    found |= {(c.name,) for c in table.columns if c.unique}
    return frozenset(found)


def _foreign_keys(table: sa.Table) -> frozenset[ForeignKey]:
    return frozenset(
        (
            tuple(fk.column_keys),
            fk.elements[0].column.table.name,
            tuple(e.column.name for e in fk.elements),
        )
        for fk in table.foreign_key_constraints
    )


def expected_triggers(table: str, dialect: str) -> dict[str, str]:
    """Trigger name → SQL that storage/triggers.py installs on an object table, on ``dialect``."""
    found: dict[str, str] = {}
    for statement in triggers.create_statements(table, dialect):
        match = _TRIGGER_NAME.search(statement)
        if match is not None:
            found[match.group(1)] = _collapsed(statement)
    return found


def metadata_shapes(metadata: sa.MetaData, counted_tables: Iterable[str]) -> dict[str, TableShape]:
    """The shape of every table of ``metadata``; ``counted_tables`` get the counter triggers."""
    with_triggers = set(counted_tables)
    shapes: dict[str, TableShape] = {}
    for table in metadata.sorted_tables:
        shapes[table.name] = TableShape(
            columns={
                c.name: ColumnShape(str(c.type.compile(dialect=_SQLITE)).upper(), bool(c.nullable))
                for c in table.columns
            },
            primary_key=tuple(c.name for c in table.primary_key.columns),
            unique=_unique_sets(table),
            foreign_keys=_foreign_keys(table),
            indexes={
                str(index.name): IndexShape(
                    tuple(_normalised(e) for e, _ in _index_elements(index)),
                    bool(index.unique),
                )
                for index in table.indexes
            },
            triggers=expected_triggers(table.name, "sqlite") if table.name in with_triggers else {},
        )
    return shapes


# --- rendering literals ----------------------------------------------------------------------


def _q(text: str) -> str:
    """A double-quoted Python string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


def _sql_literal(text: str, indent: str) -> str:
    """``text`` as a Python literal: long SQL as implicit concatenation, a piece per line.

    Multi-line text (the PostgreSQL function) keeps its lines; a long single line is cut at
    spaces, so the file stays readable and every character of the SQL is kept.
    """
    if "\n" not in text and len(text) <= 76:
        return _q(text)
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while "\n" not in text and len(line) > 76:
            cut = line.rfind(" ", 0, 76)
            cut = 76 if cut <= 0 else cut + 1
            pieces.append(line[:cut])
            line = line[cut:]
        if line:
            pieces.append(line)
    inner = "".join(f"{indent}    {_q(p)}\n" for p in pieces)
    return f"(\n{inner}{indent})"


def _execute(sql: str, indent: str) -> str:
    """``op.execute(...)`` of ``sql``; a long statement's pieces are its only argument."""
    literal = _sql_literal(sql, indent)
    if literal.startswith("("):
        return f"op.execute{literal}"
    return f"op.execute({literal})"


def _plain_type(type_: sa.types.TypeEngine[Any]) -> str:
    kind = type(type_)
    if kind is sa.String:
        length = getattr(type_, "length", None)
        return f"sa.String({length})" if length is not None else "sa.String()"
    simple = (sa.Text, sa.Integer, sa.BigInteger, sa.SmallInteger, sa.Boolean, sa.LargeBinary)
    if kind in simple:
        return f"sa.{kind.__name__}()"
    raise ValueError(f"cannot write a literal for column type {type_!r}: teach migration_writer")


def render_type(type_: sa.types.TypeEngine[Any]) -> str:
    """A SQLAlchemy type as code (``sa.BigInteger().with_variant(sa.Integer(), "sqlite")``)."""
    code = _plain_type(type_)
    for dialect, variant in sorted(type_._variant_mapping.items()):
        code += f".with_variant({_plain_type(variant)}, {_q(dialect)})"
    return code


def render_column(column: sa.Column[Any]) -> str:
    """A column as ``sa.Column(...)``; keys and references are rendered as table constraints."""
    code = f"sa.Column({_q(column.name)}, {render_type(column.type)}"
    if column.identity is not None:
        # PostgreSQL's generated numbering (SQLite has none and ignores it).
        options = {"always": column.identity.always, "start": column.identity.start}
        options |= {"increment": column.identity.increment}
        given = ", ".join(f"{k}={v!r}" for k, v in options.items() if v not in (None, False))
        code += f", sa.Identity({given})"
    code += f", nullable={column.nullable}"
    if column.autoincrement is True:
        code += ", autoincrement=True"
    return code + ")"


def _render_names(names: Iterable[str]) -> str:
    return ", ".join(_q(n) for n in names)


def render_constraints(table: sa.Table) -> list[str]:
    """The primary key, unique constraints and foreign keys of ``table`` as code."""
    code = []
    if table.primary_key.columns:
        code.append(f"sa.PrimaryKeyConstraint({_render_names(table.primary_key.columns.keys())})")
    code += [f"sa.UniqueConstraint({_render_names(cols)})" for cols in sorted(_unique_sets(table))]
    for columns, referred, referred_columns in sorted(_foreign_keys(table)):
        local = f"[{_render_names(columns)}]"
        remote = f"[{_render_names(f'{referred}.{c}' for c in referred_columns)}]"
        code.append(f"sa.ForeignKeyConstraint({local}, {remote})")
    return code


def render_create_index(index: sa.Index, table: str) -> str:
    """``op.create_index(...)`` for ``index``; expressions become ``sa.text`` literals."""
    elements = [
        _q(e) if is_column else f"sa.text({_q(e)})" for e, is_column in _index_elements(index)
    ]
    unique = ", unique=True" if index.unique else ""
    return f"op.create_index({_q(str(index.name))}, {_q(table)}, [{', '.join(elements)}]{unique})"


def _postgres_key_name(table: str, columns: Sequence[str], suffix: str) -> str:
    # PostgreSQL's default constraint names (``t_pkey``, ``t_a_b_key``, ``t_a_fkey``).
    return f"{table}_{suffix}" if suffix == "pkey" else f"{table}_{'_'.join(columns)}_{suffix}"


# --- the plan ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """The code of a migration's ``upgrade`` and ``downgrade``, and what it needs."""

    upgrade: list[str] = field(default_factory=list)
    downgrade: list[str] = field(default_factory=list)
    reversible: bool = True
    #: Table → trigger DDL per dialect, to create and to drop.
    create_triggers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    drop_triggers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    needs_parser: bool = False
    summary: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the database already matches the metadata."""
        return not self.upgrade


def _add_trigger_ddl(plan: Plan, table: str) -> None:
    plan.create_triggers[table] = {d: triggers.create_statements(table, d) for d in _DIALECTS}
    plan.drop_triggers[table] = {d: triggers.drop_statements(table, d) for d in _DIALECTS}


def _counter_backfill(table: str) -> str:
    sql = (
        "INSERT INTO object_counts (table_name, account_id, livemode, slot, n) "
        f"SELECT '{table}', account_id, livemode, 0, count(*) FROM {table} "
        "GROUP BY account_id, livemode"
    )
    return _execute(sql, "    ")


def _time_backfills(
    table: str, new_columns: Iterable[str], old_columns: Iterable[str], resource: Resource | None
) -> list[str]:
    if resource is None:
        return []
    old = set(old_columns)
    return [
        f"_backfill_time_column({_q(table)}, {_q(f.name)}, {_q(time_column(f.name))})"
        for f in resource.time_range_fields
        if time_column(f.name) in new_columns and f.name in old
    ]


def _plan_new_table(plan: Plan, table: sa.Table, is_object_table: bool) -> None:
    parts = [_q(table.name)]
    parts += [render_column(c) for c in table.columns]
    parts += render_constraints(table)
    inner = "".join(f"        {p},\n" for p in parts)
    plan.upgrade.append(f"op.create_table(\n{inner}    )")
    plan.upgrade += [render_create_index(i, table.name) for i in _sorted_indexes(table)]
    if is_object_table:
        _add_trigger_ddl(plan, table.name)
        plan.upgrade.append(f"_run(CREATE_TRIGGERS, {_q(table.name)})")
    plan.downgrade.insert(0, f"op.drop_table({_q(table.name)})")
    plan.summary.append(f"new table {table.name}")


def _sorted_indexes(table: sa.Table) -> list[sa.Index]:
    return sorted(table.indexes, key=lambda i: str(i.name))


def _plan_changed_table(
    plan: Plan,
    table: sa.Table,
    have: TableShape,
    want: TableShape,
    resource: Resource | None,
) -> None:
    name = table.name
    added = [c for c in want.columns if c not in have.columns]
    removed = [c for c in have.columns if c not in want.columns]
    altered = [c for c in want.columns if c in have.columns and have.columns[c] != want.columns[c]]
    keys_changed = (
        have.primary_key != want.primary_key
        or have.unique != want.unique
        or have.foreign_keys != want.foreign_keys
    )
    index_gone = [i for i in have.indexes if have.indexes[i] != want.indexes.get(i)]
    index_new = [i for i in want.indexes if want.indexes[i] != have.indexes.get(i)]
    triggers_changed = have.triggers != want.triggers
    backfills = _time_backfills(name, added, have.columns, resource)
    count_backfill = bool(want.triggers) and not have.triggers
    if not (added or removed or altered or keys_changed or index_gone or index_new):
        if triggers_changed:
            _plan_triggers(plan, name, have, want, count_backfill)
        return
    plan.summary.append(f"changed table {name}")
    rebuild = bool(altered) or keys_changed
    if not rebuild:
        # Both dialects: plain ALTERs and index changes, the triggers untouched.
        plan.upgrade += [f"op.drop_index({_q(i)}, table_name={_q(name)})" for i in index_gone]
        plan.upgrade += [f'op.execute("ALTER TABLE {name} DROP COLUMN {c}")' for c in removed]
        plan.upgrade += [f"op.add_column({_q(name)}, {render_column(table.c[c])})" for c in added]
        plan.upgrade += backfills
        indexes = {str(i.name): i for i in table.indexes}
        plan.upgrade += [render_create_index(indexes[i], name) for i in sorted(index_new)]
        # Undone in reverse: the new indexes first (SQLite cannot drop an indexed column).
        plan.downgrade[:0] = [
            *(f"op.drop_index({_q(i)}, table_name={_q(name)})" for i in index_new),
            *(f'op.execute("ALTER TABLE {name} DROP COLUMN {c}")' for c in added),
        ]
        if removed or index_gone:
            plan.reversible = False
        if triggers_changed:
            _plan_triggers(plan, name, have, want, count_backfill)
        return
    plan.reversible = False
    _add_trigger_ddl(plan, name)
    common = [c for c in want.columns if c in have.columns]
    rebuilt = f"_rebuild_{name}"
    parts = [_q(rebuilt), *(render_column(c) for c in table.columns), *render_constraints(table)]
    inner = "".join(f"            {p},\n" for p in parts)
    copy = f"INSERT INTO {rebuilt} ({', '.join(common)}) SELECT {', '.join(common)} FROM {name}"
    sqlite_steps = [f'op.execute("DROP TRIGGER IF EXISTS {t}")' for t in sorted(have.triggers)]
    sqlite_steps += [
        f"op.create_table(\n{inner}        )",
        _execute(copy, "        "),
        f"op.drop_table({_q(name)})",
        f"op.rename_table({_q(rebuilt)}, {_q(name)})",
        *(render_create_index(i, name) for i in _sorted_indexes(table)),
    ]
    if want.triggers:
        sqlite_steps.append(f"_run(CREATE_TRIGGERS, {_q(name)})")
    postgres_steps = _postgres_alterations(table, have, want, index_gone, index_new, removed, added)
    if want.triggers and (triggers_changed or not have.triggers):
        postgres_steps += [f"_run(DROP_TRIGGERS, {_q(name)})", f"_run(CREATE_TRIGGERS, {_q(name)})"]
    if not want.triggers and have.triggers:
        postgres_steps.append(f"_run(DROP_TRIGGERS, {_q(name)})")
    plan.upgrade.append(
        'if op.get_bind().dialect.name == "sqlite":\n'
        + "".join(f"        {s}\n" for s in sqlite_steps)
        + "    else:\n"
        + "".join(f"        {s}\n" for s in postgres_steps)
    )
    plan.upgrade += backfills
    if count_backfill:
        plan.upgrade.append(_counter_backfill(name))


def _postgres_alterations(
    table: sa.Table,
    have: TableShape,
    want: TableShape,
    index_gone: list[str],
    index_new: list[str],
    removed: list[str],
    added: list[str],
) -> list[str]:
    name = table.name
    steps = [f"op.drop_index({_q(i)}, table_name={_q(name)})" for i in index_gone]
    for columns in sorted(have.unique - want.unique):
        key = _postgres_key_name(name, columns, "key")
        steps.append(f'op.drop_constraint({_q(key)}, {_q(name)}, type_="unique")')
    for columns, _, _ in sorted(have.foreign_keys - want.foreign_keys):
        key = _postgres_key_name(name, columns, "fkey")
        steps.append(f'op.drop_constraint({_q(key)}, {_q(name)}, type_="foreignkey")')
    if have.primary_key != want.primary_key:
        key = _postgres_key_name(name, (), "pkey")
        steps.append(f'op.drop_constraint({_q(key)}, {_q(name)}, type_="primary")')
    steps += [f'op.execute("ALTER TABLE {name} DROP COLUMN {c}")' for c in removed]
    steps += [f"op.add_column({_q(name)}, {render_column(table.c[c])})" for c in added]
    for column in want.columns:
        if column in have.columns and have.columns[column] != want.columns[column]:
            c = table.c[column]
            steps.append(
                f"op.alter_column({_q(name)}, {_q(column)}, type_={render_type(c.type)}, "
                f"nullable={c.nullable})"
            )
    if have.primary_key != want.primary_key:
        key = _postgres_key_name(name, (), "pkey")
        steps.append(
            f"op.create_primary_key({_q(key)}, {_q(name)}, [{_render_names(want.primary_key)}])"
        )
    for columns in sorted(want.unique - have.unique):
        key = _postgres_key_name(name, columns, "key")
        steps.append(
            f"op.create_unique_constraint({_q(key)}, {_q(name)}, [{_render_names(columns)}])"
        )
    for columns, referred, referred_columns in sorted(want.foreign_keys - have.foreign_keys):
        key = _postgres_key_name(name, columns, "fkey")
        steps.append(
            f"op.create_foreign_key({_q(key)}, {_q(name)}, {_q(referred)}, "
            f"[{_render_names(columns)}], [{_render_names(referred_columns)}])"
        )
    indexes = {str(i.name): i for i in table.indexes}
    steps += [render_create_index(indexes[i], name) for i in sorted(index_new)]
    return steps or ["pass"]


def _plan_triggers(
    plan: Plan, name: str, have: TableShape, want: TableShape, count_backfill: bool
) -> None:
    plan.summary.append(f"triggers of {name}")
    _add_trigger_ddl(plan, name)
    if have.triggers:
        plan.upgrade.append(f"_run(DROP_TRIGGERS, {_q(name)})")
    if want.triggers:
        plan.upgrade.append(f"_run(CREATE_TRIGGERS, {_q(name)})")
        plan.downgrade.insert(0, f"_run(DROP_TRIGGERS, {_q(name)})")
    if count_backfill:
        plan.upgrade.append(_counter_backfill(name))
    if have.triggers:
        plan.reversible = False


def plan_migration(
    have: dict[str, TableShape], metadata: sa.MetaData, resources: Sequence[Resource]
) -> Plan:
    """What the next migration must do to take a database shaped ``have`` to ``metadata``."""
    by_table = {r.table_name: r for r in resources}
    counted = {*by_table, *(t for t in COUNTED_TABLES if t in metadata.tables)}
    want = metadata_shapes(metadata, counted)
    plan = Plan()
    for table in metadata.sorted_tables:
        if table.name not in have:
            _plan_new_table(plan, table, table.name in counted)
        else:
            resource = by_table.get(table.name)
            _plan_changed_table(plan, table, have[table.name], want[table.name], resource)
    for name in sorted(set(have) - set(want), reverse=True):
        plan.upgrade.append(f"op.drop_table({_q(name)})")
        plan.summary.append(f"dropped table {name}")
        plan.reversible = False
    plan.needs_parser = any(line.startswith("_backfill_time_column") for line in plan.upgrade)
    return plan


# --- the file ----------------------------------------------------------------------------------


def _trigger_constant(name: str, statements: dict[str, dict[str, list[str]]]) -> str:
    lines = [f"{name}: dict[str, dict[str, list[str]]] = {{"]
    for dialect in _DIALECTS:
        lines.append(f"    {_q(dialect)}: {{")
        for table, per_dialect in sorted(statements.items()):
            lines.append(f"        {_q(table)}: [")
            for statement in per_dialect[dialect]:
                lines.append(f"            {_sql_literal(statement, '            ')},")
            lines.append("        ],")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


def render_migration(
    plan: Plan, message: str, revision: str, down_revision: str | None, today: str
) -> str:
    """The text of the migration file for ``plan``."""
    imports = ["from collections.abc import Sequence"]
    if plan.needs_parser:
        imports = [
            "import re",
            "from collections.abc import Sequence",
            "from datetime import UTC, datetime, timedelta, timezone",
        ]
    summary = "".join(f"- {s}\n" for s in plan.summary)
    header = (
        f'"""{message}\n\n'
        "Written by ``overplane migrations new`` from the declarations; every value is a "
        "literal,\nso this file does not change when live code does.\n\n"
        f"{summary}\n"
        f"Revision ID: {revision}\nRevises: {down_revision or ''}\nCreate Date: {today}\n"
        '"""\n\n' + "\n".join(imports) + "\n\n{sqlalchemy}from alembic import op\n\n"
        f"revision: str = {_q(revision)}\n"
        f"down_revision: str | None = {_q(down_revision) if down_revision else 'None'}\n"
        "branch_labels: str | Sequence[str] | None = None\n"
        "depends_on: str | Sequence[str] | None = None"
    )
    body = [header]
    if plan.create_triggers:
        body.append(
            "# The counting and tombstone triggers of object tables, as storage/triggers.py "
            "wrote them\n# when this migration was made, for each dialect.\n"
            + _trigger_constant("CREATE_TRIGGERS", plan.create_triggers)
            + "\n"
            + _trigger_constant("DROP_TRIGGERS", plan.drop_triggers)
        )
        body.append(_TRIGGER_HELPER.strip())
    if plan.needs_parser:
        body.append(PARSE_NS_SOURCE.strip())
    upgrade = "".join(f"    {line}\n" for line in plan.upgrade)
    if plan.reversible:
        downgrade = "".join(f"    {line}\n" for line in plan.downgrade) or "    pass\n"
    else:
        downgrade = (
            "    raise NotImplementedError(\n"
            '        "written by overplane migrations new: this change is not reversed '
            'automatically"\n    )\n'
        )
    body.append(f"def upgrade() -> None:\n{upgrade.rstrip()}")
    body.append(f"def downgrade() -> None:\n{downgrade.rstrip()}")
    # Two blank lines between top-level blocks, as ruff format wants them.
    text = "\n\n\n".join(body) + "\n"
    # A migration that only drops things names no SQLAlchemy type: no unused import.
    used = "sa." in text.partition("depends_on:")[2]
    return text.replace("{sqlalchemy}", "import sqlalchemy as sa\n" if used else "", 1)


def _slug(message: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    return slug[:48].rstrip("_") or "migration"


def _format(path: Path) -> None:
    # The text is written close to ruff's style; ruff, when installed (it is a development
    # tool), settles the rest, so that the file passes the project's format check.
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        subprocess.run(
            [ruff, "format", "--quiet", "--line-length", "100", str(path)],
            check=True,
            capture_output=True,
        )


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`write_migration` did: the file (None when there was nothing to write)."""

    path: Path | None
    summary: tuple[str, ...]


def scratch_shapes(extra_versions: Sequence[Path]) -> tuple[dict[str, TableShape], ScriptDirectory]:
    """Migrate a temporary SQLite file to head; its shape and the scripts that made it."""
    with tempfile.TemporaryDirectory(prefix="overplane-migrations-") as directory:
        url = f"sqlite:///{Path(directory) / 'scratch.sqlite3'}"
        migrate.upgrade(url, extra_versions)
        engine = sa.create_engine(migrate.alembic_url(url), poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                shapes = database_shapes(connection)
        finally:
            engine.dispose()
        script = ScriptDirectory.from_config(migrate.alembic_config(url, extra_versions))
    return shapes, script


def write_migration(
    message: str,
    metadata: sa.MetaData,
    resources: Sequence[Resource],
    directory: Path | None = None,
    today: str | None = None,
) -> Written:
    """Write the next migration into ``directory`` (default: the shipped versions).

    ``directory``, when given, is also read as a version location, so migrations written there
    earlier come before the new one. Nothing is written when the database migrated to head
    already matches ``metadata``.
    """
    target = Path(directory) if directory is not None else migrate.VERSIONS
    target.mkdir(parents=True, exist_ok=True)
    extra = [] if target.resolve() == migrate.VERSIONS.resolve() else [target]
    have, script = scratch_shapes(extra)
    plan = plan_migration(have, metadata, resources)
    if plan.empty:
        return Written(None, ())
    heads = script.get_heads()
    if len(heads) > 1:
        raise ValueError(f"the migrations have several heads ({', '.join(heads)}): merge first")
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    revision = f"{max(numbers, default=0) + 1:04d}"
    day = today or datetime.now(UTC).date().isoformat()
    text = render_migration(plan, message, revision, heads[0] if heads else None, day)
    path = target / f"{revision}_{_slug(message)}.py"
    path.write_text(text)
    _format(path)
    return Written(path, tuple(plan.summary))
