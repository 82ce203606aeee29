"""Reading and writing the objects of one resource, scoped by account and mode.

Each operation is one SQL statement, derived from the resource's declaration once at start. A
row comes back as ``(id, created_at, updated_at, *fields)``, timestamps in epoch milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from overplane.declarations import Resource
from overplane.storage.database import Database, Row
from overplane.storage.ids import could_be_object_id, new_object_id

#: Beyond this an offset cannot match a row, and larger numbers overflow SQL integers.
MAX_SQL_OFFSET = 2**62


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose objects a request may see: one account, in one mode."""

    account_id: str
    livemode: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list and the count of the whole list."""

    rows: list[Row]
    total: int


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class ObjectStore:
    """The SQL of one resource's table and the calls that run it."""

    def __init__(self, resource: Resource, db: Database) -> None:
        self.resource = resource
        self.db = db
        table = resource.table_name
        self._field_names = tuple(f.name for f in resource.fields)
        columns = ", ".join(("id", "created_at", "updated_at", *self._field_names))
        scoped = "account_id = ? AND livemode = ?"
        self._insert = (
            f"INSERT INTO {table} (id, account_id, livemode, created_at, updated_at"
            f"{''.join(', ' + n for n in self._field_names)}) "
            f"VALUES (?, ?, ?, ?, ?{', ?' * len(self._field_names)})"
        )
        self._select = f"SELECT {columns} FROM {table} WHERE id = ? AND {scoped}"
        self._delete = f"DELETE FROM {table} WHERE id = ? AND {scoped} RETURNING id"
        # One statement, so the page and its total come from the same snapshot. The count
        # row survives the LEFT JOIN even when the page is empty (an offset past the end).
        page_columns = ", ".join(
            f"p.{c}" for c in ("id", "created_at", "updated_at", *self._field_names)
        )
        self._list = (
            f"SELECT c.total, {page_columns} FROM "
            f"(SELECT count(*) AS total FROM {table} WHERE {scoped}) AS c "
            f"LEFT JOIN (SELECT seq, {columns} FROM {table} WHERE {scoped} "
            "ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?) AS p ON 1 = 1 "
            "ORDER BY p.created_at DESC, p.seq DESC"
        )
        self._update_sql = lru_cache(maxsize=1024)(self._build_update)
        self._columns = columns

    def _build_update(self, names: tuple[str, ...]) -> str:
        # updated_at moves strictly forward, even for two updates in one millisecond.
        assignments = "".join(f"{name} = ?, " for name in names)
        return (
            f"UPDATE {self.resource.table_name} SET {assignments}"
            "updated_at = CASE WHEN ? > updated_at THEN ? ELSE updated_at + 1 END "
            f"WHERE id = ? AND account_id = ? AND livemode = ? RETURNING {self._columns}"
        )

    async def create(self, scope: Scope, values: Mapping[str, str | None]) -> Row:
        """Insert a new object with ``values`` (validated field values) and return its row."""
        object_id = new_object_id(self.resource.id_prefix)
        stamp = now_ms()
        field_values = tuple(values.get(name) for name in self._field_names)
        await self.db.execute(
            self._insert, (object_id, scope.account_id, scope.livemode, stamp, stamp, *field_values)
        )
        return (object_id, stamp, stamp, *field_values)

    async def retrieve(self, scope: Scope, object_id: str) -> Row | None:
        """The object's row, or None if this scope has no object with that id."""
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return None
        return await self.db.fetch_one(self._select, (object_id, scope.account_id, scope.livemode))

    async def update(
        self, scope: Scope, object_id: str, values: Mapping[str, str | None]
    ) -> Row | None:
        """Set ``values`` on the object and return its new row, or None if it does not exist."""
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return None
        names = tuple(name for name in self._field_names if name in values)
        stamp = now_ms()
        args: list[Any] = [values[name] for name in names]
        args += [stamp, stamp, object_id, scope.account_id, scope.livemode]
        return await self.db.fetch_one(self._update_sql(names), args)

    async def delete(self, scope: Scope, object_id: str) -> bool:
        """Delete the object; False if this scope has no object with that id."""
        if not could_be_object_id(self.resource.id_prefix, object_id):
            return False
        row = await self.db.fetch_one(self._delete, (object_id, scope.account_id, scope.livemode))
        return row is not None

    async def list(self, scope: Scope, limit: int, offset: int) -> Page:
        """A page of objects, newest first, with the count of all objects in ``scope``."""
        args: Sequence[Any] = (
            scope.account_id,
            scope.livemode,
            scope.account_id,
            scope.livemode,
            limit,
            min(offset, MAX_SQL_OFFSET),
        )
        rows = await self.db.fetch_all(self._list, args)
        total = int(rows[0][0])
        return Page(rows=[row[1:] for row in rows if row[1] is not None], total=total)
