"""Objects and lists as the JSON bytes the contract shows."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from overplane.declarations import READ_ONLY_KEYS, Resource
from overplane.rfc3339 import format_ms
from overplane.storage.database import Row

_encode = msgspec.json.Encoder().encode


class ObjectRenderer:
    """Turns a stored row of one resource into the object's JSON, keys in contract order."""

    def __init__(self, resource: Resource) -> None:
        self.keys = (*READ_ONLY_KEYS, *(f.name for f in resource.fields))

    def as_dict(self, row: Row) -> dict[str, object]:
        """The object as a dict: id, created_at, updated_at, then every field (null if unset)."""
        obj = dict(zip(self.keys, row, strict=True))
        obj["created_at"] = format_ms(row[1])
        obj["updated_at"] = format_ms(row[2])
        return obj

    def object(self, row: Row) -> bytes:
        """One object as JSON bytes."""
        return _encode(self.as_dict(row))

    def page(self, rows: Sequence[Row], total: int, has_more: bool) -> bytes:
        """The list envelope: ``{"data": [...], "has_more": …, "total": …}``."""
        return _encode(
            {"data": [self.as_dict(r) for r in rows], "has_more": has_more, "total": total}
        )


def deleted(object_id: str) -> bytes:
    """The body of a successful delete."""
    return _encode({"id": object_id, "deleted": True})


def encode(value: object) -> bytes:
    """Any JSON-able value as bytes."""
    return _encode(value)
