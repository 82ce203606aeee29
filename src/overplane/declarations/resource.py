"""What a resource is: a name, a module, an id prefix and an ordered list of string fields.

Everything else the server has for a resource (validation, table, SQL, routes, OpenAPI) is
derived from one :class:`Resource`. This module imports nothing of the project.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]*$")

#: Keys every object has before its fields; the server sets them, clients cannot.
READ_ONLY_KEYS = ("id", "created_at", "updated_at")

#: What an event records of a write, in the order of :attr:`Resource.event_types`.
EVENT_ACTIONS = ("created", "updated", "deleted")

#: The contract's floor for a field's maximum length (customer_details gets more).
DEFAULT_MAX_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class Field:
    """One string field of a resource; its value is a string or null."""

    name: str
    description: str
    example: str
    required: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    #: Lists can be filtered on equality with this field.
    filterable: bool = True
    #: An index serves the equality filter, so it costs the same at a million objects as at
    #: a hundred. Without one the filter still works, by reading the tenant's objects in list
    #: order until a page is full (and all of them for the total): fine for thousands, slow
    #: for millions. Every index is paid on each create, and on each update that changes the
    #: field (docs/performance.md, "Which filters get an index"), so only the fields lists
    #: are filtered on at scale declare one.
    indexed: bool = False
    #: Values that parse as RFC 3339 date-times are also kept, normalised, in a column of
    #: their own, so lists get range filters on this field (``field[gte]=…``).
    time_range: bool = False

    def __post_init__(self) -> None:
        # Field names become SQL column names and JSON keys: keep them boring. "__" is kept
        # for columns the server derives from a field (scheduled_time__us).
        if not _IDENTIFIER.match(self.name) or "__" in self.name or self.name in READ_ONLY_KEYS:
            raise ValueError(f"invalid field name {self.name!r}")
        if self.max_length < 1:
            raise ValueError(f"{self.name}: max_length must be positive")
        if self.indexed and not self.filterable:
            raise ValueError(f"{self.name}: only a filterable field can have a filter index")


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource of the API, served at ``/api/{module}/{name}``."""

    name: str
    module: str
    id_prefix: str
    title: str
    plural: str
    description: str
    fields: tuple[Field, ...]
    fields_by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _SLUG.match(self.name) or not _IDENTIFIER.match(self.module):
            raise ValueError(f"invalid resource name {self.module}/{self.name}")
        if not self.id_prefix.endswith("_"):
            raise ValueError(f"{self.name}: the id prefix must end with '_'")
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError(f"{self.name}: duplicate field names")
        object.__setattr__(self, "fields_by_name", by_name)

    @property
    def path(self) -> str:
        """The collection path, for example ``/api/crm/appointment``."""
        return f"/api/{self.module}/{self.name}"

    @property
    def table_name(self) -> str:
        """The SQL table that holds this resource's objects."""
        return f"{self.module}_{self.name.replace('-', '_')}"

    @property
    def event_name(self) -> str:
        """The resource's name in event types: ``party_link`` in ``party_link.created``."""
        return self.name.replace("-", "_")

    @property
    def event_types(self) -> tuple[str, str, str]:
        """The types of the events its writes record: created, updated, deleted."""
        return tuple(f"{self.event_name}.{action}" for action in EVENT_ACTIONS)  # type: ignore[return-value]

    @property
    def required_fields(self) -> tuple[Field, ...]:
        """Fields a create must send as non-blank strings."""
        return tuple(f for f in self.fields if f.required)

    @property
    def filterable_fields(self) -> tuple[Field, ...]:
        """Fields a list can be filtered on by equality."""
        return tuple(f for f in self.fields if f.filterable)

    @property
    def indexed_fields(self) -> tuple[Field, ...]:
        """Filterable fields whose equality filter an index serves."""
        return tuple(f for f in self.fields if f.indexed)

    @property
    def time_range_fields(self) -> tuple[Field, ...]:
        """Fields that also get range filters on their RFC 3339 values."""
        return tuple(f for f in self.fields if f.time_range)

    @property
    def example(self) -> dict[str, str]:
        """An example object, as the published reference pages show it."""
        values = {"id": f"{self.id_prefix}abc123"}
        values |= {
            "created_at": "2024-01-15T09:30:00.000Z",
            "updated_at": "2024-01-15T09:30:00.000Z",
        }
        return values | {f.name: f.example for f in self.fields}


def check_unique(resources: tuple[Resource, ...]) -> None:
    """Raise ValueError if two resources share a name, a path, an id prefix or a table.

    Each of these must name one resource: a route, an id or a table shared by two resources
    would silently serve, parse or store the wrong one.
    """
    keys: dict[str, Callable[[Resource], str]] = {
        "name": lambda r: f"{r.module}/{r.name}",
        "path": lambda r: r.path,
        "id prefix": lambda r: r.id_prefix,
        "table name": lambda r: r.table_name,
    }
    for what, key in keys.items():
        seen: dict[str, Resource] = {}
        for resource in resources:
            value = key(resource)
            if value in seen:
                first = seen[value]
                raise ValueError(
                    f"resources {first.module}/{first.name} and {resource.module}/{resource.name} "
                    f"share the {what} {value!r}"
                )
            seen[value] = resource
