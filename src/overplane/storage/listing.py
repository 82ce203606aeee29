"""Lists of one tenant's rows of one table: newest first, filtered, paged by offset or cursor.

Every listed table (each resource's objects, the events) has the same bookkeeping: an
``account_id`` and ``livemode`` that scope it, ``created_at`` and ``seq`` that order it (an
index on ``(account_id, livemode, created_at, seq)`` serves the order, cursors and
``created_at`` ranges), and a counter maintained by triggers in ``object_counts``, so that an
unfiltered total costs the same at a million rows. :class:`Listing` holds the SQL of that
shape once, for any table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from overplane.storage.database import Executor, Row
from overplane.storage.ids import could_be_object_id
from overplane.storage.schema import FILTER_INDEX_PREFIX
from overplane.storage.tenant import Tenant

#: Beyond this an offset cannot match a row, and larger numbers overflow SQL integers.
MAX_SQL_OFFSET = 2**62

T = TypeVar("T")


class Position(NamedTuple):
    """Where a row stands (or stood, if deleted) in its list: newest first by these two."""

    created_at: int
    seq: int


@dataclass(frozen=True, slots=True)
class Equals:
    """The field's value is exactly ``value`` (served by the field's prefix index)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class IsNull:
    """The field has no value (``is_null``), or has one."""

    field: str
    is_null: bool


@dataclass(frozen=True, slots=True)
class OneOf:
    """A short column (indexed whole) holds one of ``values``; none matches nothing."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """An integer column (``created_at``, ``updated_at``, a ``…__us`` column) against a bound
    already expressed in that column's unit."""

    column: str
    operator: Literal["<", "<=", ">", ">="]
    bound: int


@dataclass(frozen=True, slots=True)
class Unset:
    """An integer column (a ``…__us`` column) holds no value: a time field's value that is
    not an RFC 3339 date-time."""

    column: str


Condition = Equals | IsNull | OneOf | Compare | Unset


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a list request asks for: conditions, then a page by offset or by cursor."""

    conditions: tuple[Condition, ...] = ()
    limit: int = 20
    offset: int = 0
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, the count of the whole (filtered) list, and whether more follow."""

    items: list[T]
    total: int
    has_more: bool


class CursorNotFound(Exception):
    """The row a cursor names never existed in this account and mode (or was forgotten)."""

    def __init__(self, parameter: str) -> None:
        super().__init__(parameter)
        self.parameter = parameter


def sqlite_next_seq(table: str) -> str:
    """The SQL expression of the ``seq`` a new row of ``table`` takes on SQLite.

    Anyone who inserts rows outside the server (a bulk load, a script) gives this as seq;
    PostgreSQL fills seq by itself.
    """
    return f"coalesce((SELECT seq FROM {table} ORDER BY rowid DESC LIMIT 1), 0) + 1"


def insert_statements(
    table: str, columns: Sequence[str], values: Sequence[str] | None = None
) -> dict[str, str]:
    """The INSERT of one row of a listed table, by dialect: ``?`` for each of ``columns``
    (or the SQL expressions ``values``, one per column).

    PostgreSQL fills ``seq`` from its identity. On SQLite, which has one writer at a time, a
    row takes the seq of the row inserted last (the highest rowid: one step down the table's
    b-tree) plus one; so seq grows with rowid, as it did when it was the rowid itself.
    """
    names = ", ".join(columns)
    placeholders = ", ".join("?" * len(columns)) if values is None else ", ".join(values)
    return {
        "postgresql": f"INSERT INTO {table} ({names}) VALUES ({placeholders})",
        "sqlite": f"INSERT INTO {table} (seq, {names}) "
        f"VALUES ({sqlite_next_seq(table)}, {placeholders})",
    }


def condition_sql(condition: Condition) -> tuple[str, list[Any]]:
    """The WHERE term of one condition and its arguments."""
    if isinstance(condition, Equals):
        # The field's index holds its first FILTER_INDEX_PREFIX characters. A shorter value
        # equals that prefix only if it is the whole field, so the index alone decides (and a
        # count never reads the table); a longer value also needs the full comparison.
        prefix = f"substr({condition.field}, 1, {FILTER_INDEX_PREFIX})"
        if len(condition.value) < FILTER_INDEX_PREFIX:
            return f"{prefix} = ?", [condition.value]
        return (
            f"{prefix} = substr(?, 1, {FILTER_INDEX_PREFIX}) AND {condition.field} = ?",
            [condition.value, condition.value],
        )
    if isinstance(condition, IsNull):
        prefix = f"substr({condition.field}, 1, {FILTER_INDEX_PREFIX})"
        return f"{prefix} IS {'' if condition.is_null else 'NOT '}NULL", []
    if isinstance(condition, OneOf):
        if not condition.values:
            return "1 = 0", []
        return f"{condition.column} IN ({', '.join('?' * len(condition.values))})", list(
            condition.values
        )
    if isinstance(condition, Unset):
        return f"{condition.column} IS NULL", []
    return f"{condition.column} {condition.operator} ?", [condition.bound]


class Listing:
    """The list SQL of one table whose rows are read as ``columns``.

    ``tombstones``: deleted rows leave their position in ``object_tombstones`` (objects do,
    so a cursor naming a deleted object still works; events are only ever swept, and a
    cursor naming a swept event is unknown). ``uncounted``: a table of the rows not in the
    counter yet, (account_id, livemode) first, whose count the unfiltered total adds (events:
    ``event_outbox``, until the relay counts them).
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        id_prefix: str,
        tombstones: bool,
        uncounted: str | None = None,
    ) -> None:
        self.table = table
        self.id_prefix = id_prefix
        self.columns = tuple(columns)
        self._columns = ", ".join(self.columns)
        scoped = "id = ? AND account_id = ? AND livemode = ?"
        self._position = f"SELECT created_at, seq FROM {table} WHERE {scoped}"
        if tombstones:
            self._position += (
                f" UNION ALL SELECT created_at, seq FROM object_tombstones WHERE {scoped}"
            )
        self._position_args = 2 if tombstones else 1
        self._counted_total = (
            "SELECT coalesce(sum(n), 0) AS total FROM object_counts "
            f"WHERE table_name = '{table}' AND account_id = ? AND livemode = ?"
        )
        self._counted_total_tenants = 1
        if uncounted is not None:
            # One statement reads both, so a relay committing meanwhile (which moves rows
            # from one to the other) is seen entirely or not at all.
            self._counted_total = (
                f"SELECT ({self._counted_total.replace(' AS total', '')}) + (SELECT count(*) "
                f"FROM {uncounted} WHERE account_id = ? AND livemode = ?) AS total"
            )
            self._counted_total_tenants = 2

    @property
    def position_sql(self) -> str:
        """The by-id statement that finds a cursor's position (for plan checks)."""
        return self._position

    async def position(self, db: Executor, tenant: Tenant, row_id: str, parameter: str) -> Position:
        """Where a row stands (or stood) in the list; CursorNotFound if it never did."""
        row = await db.fetch_one(self._position, (row_id, *tenant.args) * self._position_args)
        if row is None:
            raise CursorNotFound(parameter)
        return Position(int(row[0]), int(row[1]))

    async def list(
        self, db: Executor, tenant: Tenant, query: ListQuery, read: Callable[[Row, int], T]
    ) -> Page[T]:
        """The page ``query`` asks for, its cursor (if any) looked up first; CursorNotFound
        if the cursor names no row this tenant has (or had)."""
        position = None
        cursor = query.starting_after or query.ending_before
        if cursor is not None:
            parameter = "starting_after" if query.starting_after is not None else "ending_before"
            if not could_be_object_id(self.id_prefix, cursor):
                raise CursorNotFound(parameter)
            position = await self.position(db, tenant, cursor, parameter)
        return await self.page(db, tenant, query, read, position)

    async def page(
        self,
        db: Executor,
        tenant: Tenant,
        query: ListQuery,
        read: Callable[[Row, int], T],
        position: Position | None = None,
    ) -> Page[T]:
        """A page of the tenant's rows that meet the query's conditions, newest first, each
        made by ``read(row, start)`` from the row's :attr:`columns` at ``start`` onwards.

        ``position`` is the cursor's (``starting_after`` or ``ending_before``), already found
        by :meth:`position`. The page and the total are read by one statement, so they agree.
        """
        filters = [condition_sql(c) for c in query.conditions]
        where = "".join(f" AND {sql}" for sql, _ in filters)
        filter_args = [arg for _, args in filters for arg in args]
        if filters:
            total_sql = f"SELECT count(*) AS total FROM {self.table} WHERE account_id = ? AND livemode = ?{where}"
            total_args = [*tenant.args, *filter_args]
        else:
            total_sql = self._counted_total
            total_args = list(tenant.args) * self._counted_total_tenants

        page_where, page_args = where, list(filter_args)
        newest_first, limit = True, query.limit
        if position is not None:
            after = query.starting_after is not None
            page_where += f" AND (created_at, seq) {'<' if after else '>'} (?, ?)"
            page_args += [position.created_at, position.seq]
            # ending_before walks towards newer rows: read them oldest first from the
            # cursor, then present the page newest first like every other page.
            newest_first = after
            limit += 1  # one more than asked tells whether more lie beyond the page
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT c.total, {', '.join('p.' + c for c in self.columns)} FROM ({total_sql}) AS c "
            f"LEFT JOIN (SELECT seq, {self._columns} FROM {self.table} "
            f"WHERE account_id = ? AND livemode = ?{page_where} "
            f"ORDER BY created_at {order}, seq {order} LIMIT ? OFFSET ?) AS p ON 1 = 1 "
            "ORDER BY p.created_at DESC, p.seq DESC"
        )
        args = [*total_args, *tenant.args, *page_args, limit, min(query.offset, MAX_SQL_OFFSET)]
        result = await db.fetch_all(sql, args)
        # Each row is the total, then a listed row (all NULL when the page is empty: LEFT JOIN).
        total = int(result[0][0])
        items = [read(row, 1) for row in result if row[1] is not None]
        if position is None:  # paging by offset
            return Page(items, total, query.offset + len(items) < total)
        has_more = len(items) > query.limit
        if has_more:
            items = items[:-1] if newest_first else items[1:]
        return Page(items, total, has_more)
