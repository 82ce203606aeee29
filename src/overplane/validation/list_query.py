"""A list request's query string, checked and turned into a storage :class:`ListQuery`.

Parameters (see docs/api.md, "Lists"):

- ``limit`` (1–100, default 20) and ``offset`` (≥ 0, default 0);
- ``starting_after=<id>`` or ``ending_before=<id>``: a page by cursor (not with an offset);
- ``<field>=<value>``: equality on any filterable field (an empty value matches "");
- ``<field>[null]=true|false``: the field has no value, or has one;
- ``created_at[op]``, ``updated_at[op]`` and ``<time field>[op]``, ``op`` one of ``gt``,
  ``gte``, ``lt``, ``lte``, with an RFC 3339 date-time.

Anything else is a 400 naming the parameter: unknown names and operators are
``parameter_unknown``, malformed values ``parameter_invalid``. The API's lists and the
dashboard's list pages parse their query strings here alike, so they take the same filters
and say the same things about bad ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from overplane.declarations import Resource
from overplane.errors import ParameterInvalid, ParameterUnknown
from overplane.rfc3339 import parse_ns
from overplane.storage.listing import Compare, Condition, Equals, IsNull, ListQuery, OneOf
from overplane.storage.schema import time_column

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PAGE_PARAMETERS = ("limit", "offset", "starting_after", "ending_before")
RANGE_OPERATORS: dict[str, Literal["<", "<=", ">", ">="]] = {
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
}
#: Nanoseconds per unit of each range column: created_at and updated_at hold milliseconds,
#: a time field's normalised column holds microseconds.
_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000
_NAME = re.compile(r"([a-z0-9_]+)(?:\[([a-z]+)\])?", re.ASCII)


def _whole_number(name: str, raw: str, low: int, high: int | None) -> int:
    # Digits only: no signs, spaces or exponents, which int() would quietly accept. The length
    # cap keeps int() away from Python's limit on huge digit strings.
    if raw.isascii() and raw.isdigit() and len(raw) <= 4000:
        value = int(raw)
        if value >= low and (high is None or value <= high):
            return value
    if high is None:
        raise ParameterInvalid(f"{name} must be an integer of at least {low}", param=name)
    raise ParameterInvalid(f"{name} must be an integer between {low} and {high}", param=name)


def _bound(
    name: str, raw: str, operator: str, ns_per_unit: int
) -> tuple[Literal["<", "<=", ">", ">="], int]:
    ns = parse_ns(raw)
    if ns is None:
        raise ParameterInvalid(
            f"{name} must be an RFC 3339 date-time such as 2024-01-15T09:30:00Z", param=name
        )
    sql_operator = RANGE_OPERATORS[operator]
    if ns_per_unit == _NS_PER_US:
        # A time field's values are stored truncated to the microsecond; truncate the bound
        # alike, so that a value always compares equal to a bound written the same way.
        return sql_operator, ns // ns_per_unit
    # created_at and updated_at are whole milliseconds: round the bound so that the integer
    # comparison is exact: x > b ⇔ x > ⌊b⌋, x ≥ b ⇔ x ≥ ⌈b⌉, x < b ⇔ x < ⌈b⌉, x ≤ b ⇔ x ≤ ⌊b⌋.
    floor = ns // ns_per_unit
    ceiling = -(-ns // ns_per_unit)
    return sql_operator, floor if sql_operator in (">", "<=") else ceiling


class QueryParser:
    """Parses a list's query string: the page parameters here, conditions by subclass."""

    def parameter_names(self) -> list[str]:
        """Every query parameter the list takes (for the OpenAPI document)."""
        return list(PAGE_PARAMETERS)

    def parse(self, query: Sequence[tuple[str, str]]) -> ListQuery:
        """The checked :class:`ListQuery` for ``query``, or a 400 naming the parameter."""
        seen: set[str] = set()
        page: dict[str, str] = {}
        conditions: list[Condition] = []
        for name, raw in query:
            if name in seen:
                raise ParameterInvalid(f"{name} was given more than once", param=name)
            seen.add(name)
            if name in PAGE_PARAMETERS:
                page[name] = raw
                continue
            if "\x00" in raw:
                raise ParameterInvalid(f"{name} must not contain NUL characters", param=name)
            conditions.append(self._condition(name, raw))
        return self._page(page, tuple(conditions))

    def _condition(self, name: str, raw: str) -> Condition:
        raise ParameterUnknown(f"Received unknown query parameter: {name}.", param=name)

    def _page(self, page: dict[str, str], conditions: tuple[Condition, ...]) -> ListQuery:
        limit = (
            _whole_number("limit", page["limit"], 1, MAX_LIMIT)
            if "limit" in page
            else DEFAULT_LIMIT
        )
        offset = _whole_number("offset", page["offset"], 0, None) if "offset" in page else 0
        after, before = page.get("starting_after"), page.get("ending_before")
        if after is not None and before is not None:
            raise ParameterInvalid(
                "Give starting_after or ending_before, not both", param="ending_before"
            )
        if (after is not None or before is not None) and offset:
            raise ParameterInvalid("offset cannot be combined with a cursor", param="offset")
        return ListQuery(
            conditions=conditions,
            limit=limit,
            offset=offset,
            starting_after=after,
            ending_before=before,
        )


class ListQueryParser(QueryParser):
    """Parses list query strings for one resource; knows which names and operators exist."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.equality = {f.name for f in resource.filterable_fields}
        self.ranges: dict[str, tuple[str, int]] = {
            "created_at": ("created_at", _NS_PER_MS),
            "updated_at": ("updated_at", _NS_PER_MS),
        }
        for field in resource.time_range_fields:
            self.ranges[field.name] = (time_column(field.name), _NS_PER_US)

    def parameter_names(self) -> list[str]:
        names = super().parameter_names()
        for field in self.resource.filterable_fields:
            names += [field.name, f"{field.name}[null]"]
        for name in self.ranges:
            names += [f"{name}[{op}]" for op in RANGE_OPERATORS]
        return names

    def _condition(self, name: str, raw: str) -> Condition:
        match = _NAME.fullmatch(name)
        field, operator = match.groups() if match else (None, None)
        if field in self.equality and operator is None:
            return Equals(field=field, value=raw)
        if field in self.equality and operator == "null":
            if raw not in ("true", "false"):
                raise ParameterInvalid(f"{name} must be true or false", param=name)
            return IsNull(field=field, is_null=raw == "true")
        if field in self.ranges and operator in RANGE_OPERATORS:
            column, ns_per_unit = self.ranges[field]
            sql_operator, bound = _bound(name, raw, operator, ns_per_unit)
            return Compare(column=column, operator=sql_operator, bound=bound)
        return super()._condition(name, raw)


#: What a ``type`` filter may look like: event type characters and ``*`` wildcards.
_TYPE_PATTERN = re.compile(r"[a-z0-9_.*]{1,100}", re.ASCII)


class EventQueryParser(QueryParser):
    """Parses the event list's query string: ``type`` (``*`` matches any run of characters,
    as in ``appointment.*`` or ``*.deleted``) and ``created_at`` ranges."""

    def __init__(self, types: Sequence[str]) -> None:
        self.types = tuple(types)

    def parameter_names(self) -> list[str]:
        names = [*super().parameter_names(), "type"]
        return names + [f"created_at[{op}]" for op in RANGE_OPERATORS]

    def matching(self, pattern: str) -> tuple[str, ...]:
        """The known event types that ``pattern`` matches (none for an unknown type)."""
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        return tuple(t for t in self.types if regex.fullmatch(t))

    def _condition(self, name: str, raw: str) -> Condition:
        if name == "type":
            if not _TYPE_PATTERN.fullmatch(raw):
                raise ParameterInvalid(
                    "type must be an event type such as appointment.created, "
                    "with * matching any run of characters (appointment.*)",
                    param=name,
                )
            return OneOf(column="type", values=self.matching(raw))
        match = _NAME.fullmatch(name)
        field, operator = match.groups() if match else (None, None)
        if field == "created_at" and operator in RANGE_OPERATORS:
            sql_operator, bound = _bound(name, raw, operator, _NS_PER_MS)
            return Compare(column="created_at", operator=sql_operator, bound=bound)
        return super()._condition(name, raw)
