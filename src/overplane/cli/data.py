"""The data commands: ``overplane appointments list|get|create|update|delete`` and the same for
every declared resource, made by one factory from the declarations and sent through
:mod:`overplane.client` (never storage: they talk to any server, local or remote).

A resource's group is named after its plural (``appointments``, ``party-links``); its options
are its fields: ``--customer-name`` on create and update, equality filters on list for each
filterable field, ``--created-at-gte``-style ranges on ``created_at``, ``updated_at`` and each
field declared with ``time_range``. A new resource gets its commands without new code.

Output: rich tables for people on standard output, or ``--json`` (the API's JSON as it is);
errors as one line (status, code, message, param, request id) on standard error, exit 1.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from overplane.cli.output import JsonOption, err, fail, print_json, table_console
from overplane.client import APIConnectionError, APIError, Client
from overplane.client.clients import DEFAULT_BASE_URL
from overplane.declarations import Resource

#: The range operators of list filters, as the API spells them.
RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
#: Range filters every resource has (besides its fields declared with ``time_range``).
TIMESTAMPS = ("created_at", "updated_at")

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="OVERPLANE_API_KEY",
        show_envvar=True,
        help="A secret key (sk_test_… or sk_live_…).",
    ),
]
BaseUrlOption = Annotated[
    str,
    typer.Option(
        "--base-url", envvar="OVERPLANE_BASE_URL", show_envvar=True, help="The API's address."
    ),
]


def command_name(resource: Resource) -> str:
    """The command group of a resource: its plural with hyphens (``party-links``)."""
    return resource.plural.replace(" ", "-")


def namespace_name(resource: Resource) -> str:
    """The client's attribute for a resource (``party_links``), as the client derives it."""
    return resource.plural.replace(" ", "_").replace("-", "_")


def option_name(name: str) -> str:
    """``--customer-name`` for the field ``customer_name``."""
    return "--" + name.replace("_", "-")


def range_filters(resource: Resource) -> list[str]:
    """The names of the fields with range filters: timestamps, then ``time_range`` fields."""
    return [*TIMESTAMPS, *(f.name for f in resource.time_range_fields)]


def new_client(api_key: str | None, base_url: str) -> Client:
    """A client of the API at ``base_url``, or a clean exit when no key was given."""
    if not api_key:
        raise fail("no API key: pass --api-key or set OVERPLANE_API_KEY")
    return Client(api_key=api_key, base_url=base_url)


def describe_error(exc: Exception, base_url: str) -> str:
    """One line a person can act on: status, code, message, param and request id."""
    if isinstance(exc, APIConnectionError):
        return f"cannot reach the API at {base_url}: {exc}"
    if isinstance(exc, APIError):
        parts = [f"{exc.status} {exc.code or 'error'}: {exc.message}"]
        if exc.param:
            parts.append(f"(param: {exc.param})")
        if exc.request_id:
            parts.append(f"[request {exc.request_id}]")
        return " ".join(parts)
    return str(exc)


@contextmanager
def api_errors(base_url: str) -> Iterator[None]:
    """Turn the client's exceptions into one line on standard error and exit status 1."""
    try:
        yield
    except (APIError, APIConnectionError) as exc:
        raise fail(describe_error(exc, base_url)) from None


def error_json(exc: APIError) -> dict[str, Any]:
    """An API error as ``--json`` scripts see it on standard error."""
    return {"status": exc.status, "code": exc.code, "message": exc.message, "param": exc.param}


def object_table(obj: dict[str, Any]) -> Table:
    """One object, a field per row."""
    table = Table("field", "value", show_header=False)
    for key, value in obj.items():
        table.add_row(key, "" if value is None else str(value))
    return table


def list_columns(resource: Resource) -> list[str]:
    """The columns a list shows by default: the id, the required fields, the creation time."""
    return ["id", *(f.name for f in resource.required_fields), "created_at"]


def print_page(
    page: Any, all_pages: bool, json_output: bool, columns: list[str], plural: str
) -> None:
    """A list's page (or, with ``all_pages``, every object from it on) as a table with
    ``columns``, or as the API's envelope with ``json_output``; streamed either way, so
    ``--all`` holds one page at a time however long the list."""
    objects = page.auto_paging_iter() if all_pages else iter(page.data)
    if json_output:
        has_more = False if all_pages else page.has_more
        out = sys.stdout
        out.write('{"data": [')
        for index, obj in enumerate(objects):
            out.write(
                ("," if index else "") + "\n  " + json.dumps(obj.to_dict(), ensure_ascii=False)
            )
        out.write(f'\n], "has_more": {json.dumps(has_more)}, "total": {page.total}}}\n')
        return
    table = Table(*columns)
    count = 0
    for obj in objects:
        values = obj.to_dict()
        table.add_row(*("" if values.get(c) is None else str(values.get(c)) for c in columns))
        count += 1
    table_console().print(table)
    more = (
        " (more: --all, or --starting-after the last id)" if page.has_more and not all_pages else ""
    )
    err.print(f"{count} of {page.total} {plural}{more}")


def paging_parameters() -> list[inspect.Parameter]:
    """``--limit``, ``--all``, ``--offset``, the cursors and ``--columns`` of every list."""
    return [
        keyword(
            "limit",
            Annotated[int, typer.Option(min=1, max=100, help="Objects per page (1-100).")],
            20,
        ),
        keyword(
            "all_pages",
            Annotated[bool, typer.Option("--all", help="Every page, by cursor.")],
            False,
        ),
        keyword("offset", Annotated[int | None, typer.Option(min=0, help="Skip this many.")]),
        keyword(
            "starting_after",
            Annotated[str | None, typer.Option(help="The page after this id (older).")],
        ),
        keyword(
            "ending_before",
            Annotated[str | None, typer.Option(help="The page before this id (newer).")],
        ),
        keyword(
            "columns",
            Annotated[str | None, typer.Option(help="Comma-separated keys the table shows.")],
        ),
    ]


def make_command(
    name: str,
    implementation: Callable[..., None],
    parameters: list[inspect.Parameter],
    doc: str,
) -> Callable[..., None]:
    """A function typer can read: ``parameters`` (derived from a declaration) as its
    signature, calling ``implementation`` with them by keyword."""

    def command(**kwargs: Any) -> None:
        implementation(**kwargs)

    command.__name__ = name.replace("-", "_")
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


def keyword(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    """A keyword parameter of a generated command."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def connection_parameters() -> list[inspect.Parameter]:
    """``--api-key``, ``--base-url`` and ``--json``, which every data command takes."""
    return [
        keyword("api_key", ApiKeyOption),
        keyword("base_url", BaseUrlOption, DEFAULT_BASE_URL),
        keyword("json_output", JsonOption, False),
    ]


def filter_parameters(resource: Resource) -> list[inspect.Parameter]:
    """A list's filters as options: equality per filterable field, ``--null``/``--not-null``,
    and ``--<field>-<op>`` for every range."""
    parameters = [
        keyword(
            f"filter__{field.name}",
            Annotated[
                str | None,
                typer.Option(option_name(field.name), help=f"Only where {field.name} equals this."),
            ],
        )
        for field in resource.filterable_fields
    ]
    names = ", ".join(f.name for f in resource.filterable_fields)
    parameters += [
        keyword(
            "null",
            Annotated[
                list[str] | None,
                typer.Option("--null", help=f"Only where this field is null ({names})."),
            ],
        ),
        keyword(
            "not_null",
            Annotated[
                list[str] | None,
                typer.Option("--not-null", help="Only where this field has a value."),
            ],
        ),
    ]
    for field in range_filters(resource):
        for op in RANGE_OPERATORS:
            parameters.append(
                keyword(
                    f"range__{field}__{op}",
                    Annotated[
                        str | None,
                        typer.Option(
                            f"{option_name(field)}-{op}",
                            help=f"Only where {field} is {op} this RFC 3339 time.",
                        ),
                    ],
                )
            )
    return parameters


def filters_from(resource: Resource, options: dict[str, Any]) -> dict[str, Any]:
    """The client's ``list(**filters)`` from the generated filter options (consumed)."""
    filters: dict[str, Any] = {}
    for field in resource.filterable_fields:
        value = options.pop(f"filter__{field.name}", None)
        if value is not None:
            filters[field.name] = value
    known = {f.name for f in resource.filterable_fields}
    for option, is_null in (("null", True), ("not_null", False)):
        for name in options.pop(option, None) or []:
            if name not in known:
                raise fail(f"--{option.replace('_', '-')}: {name!r} is not one of {sorted(known)}")
            filters[name] = {"null": is_null}
    for name in range_filters(resource):
        bounds = {}
        for op in RANGE_OPERATORS:
            value = options.pop(f"range__{name}__{op}", None)
            if value is not None:
                bounds[op] = value
        if bounds:
            existing = filters.get(name)
            filters[name] = {**existing, **bounds} if isinstance(existing, dict) else bounds
    return filters


def field_values(resource: Resource, options: dict[str, Any]) -> dict[str, Any]:
    """The fields given as options (consumed), by field name."""
    values: dict[str, Any] = {}
    for field in resource.fields:
        value = options.pop(f"field__{field.name}", None)
        if value is not None:
            values[field.name] = value
    return values


def etag(value: str | None) -> str | None:
    """An ``If-Match`` value: an ETag as the API sends it (``"1705311000123"``), or ``*``;
    a bare version is quoted for the user."""
    if value is None or value == "*" or value.startswith(('"', "W/")):
        return value
    return f'"{value}"'


def resource_app(resource: Resource) -> typer.Typer:
    """The command group of one declared resource: list, get, create, update, delete."""
    group = typer.Typer(
        help=f"{resource.title} objects ({resource.path}) through the API.", no_args_is_help=True
    )
    attribute = namespace_name(resource)

    def namespace(client: Client) -> Any:
        return getattr(client, attribute)

    # --- list ---------------------------------------------------------------------------------
    def list_objects(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        limit: int,
        all_pages: bool,
        offset: int | None,
        starting_after: str | None,
        ending_before: str | None,
        columns: str | None,
        **options: Any,
    ) -> None:
        filters = filters_from(resource, options)
        shown = columns.split(",") if columns else list_columns(resource)
        with new_client(api_key, base_url) as client, api_errors(base_url):
            page = namespace(client).list(
                limit=limit,
                offset=offset,
                starting_after=starting_after,
                ending_before=ending_before,
                **filters,
            )
            print_page(page, all_pages, json_output, shown, resource.plural)

    group.command("list")(
        make_command(
            "list",
            list_objects,
            [
                *connection_parameters(),
                *paging_parameters(),
                *filter_parameters(resource),
            ],
            f"List {resource.plural}, newest first (filters: the fields, and ranges).",
        )
    )

    # --- get ----------------------------------------------------------------------------------
    id_argument = Annotated[str, typer.Argument(help=f"The id ({resource.id_prefix}…).")]

    def show(obj: Any, json_output: bool) -> None:
        if json_output:
            print_json(obj.to_dict())
        else:
            table_console().print(object_table(obj.to_dict()))

    def get(api_key: str | None, base_url: str, json_output: bool, object_id: str) -> None:
        with new_client(api_key, base_url) as client, api_errors(base_url):
            show(namespace(client).retrieve(object_id), json_output)

    group.command("get")(
        make_command(
            "get",
            get,
            [keyword("object_id", id_argument, inspect.Parameter.empty), *connection_parameters()],
            f"Show one {resource.title.lower()}.",
        )
    )

    # --- create -------------------------------------------------------------------------------
    def create(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        idempotency_key: str | None,
        **options: Any,
    ) -> None:
        values = field_values(resource, options)
        with new_client(api_key, base_url) as client, api_errors(base_url):
            created = namespace(client).create(idempotency_key=idempotency_key, **values)
        if not json_output:
            err.print(f"Created {created['id']}.")
        show(created, json_output)

    # Required fields are required options: the client's typed create needs them, and a
    # missing one is told before anything is sent.
    create_fields = [
        keyword(
            f"field__{field.name}",
            Annotated[
                str if field.required else str | None,
                typer.Option(option_name(field.name), help=field.description),
            ],
            inspect.Parameter.empty if field.required else None,
        )
        for field in resource.fields
    ]
    idempotency_option = keyword(
        "idempotency_key",
        Annotated[
            str | None,
            typer.Option(
                help="Makes a retry safe: the same key never creates twice (default: a new one)."
            ),
        ],
    )
    group.command("create")(
        make_command(
            "create",
            create,
            [*connection_parameters(), idempotency_option, *create_fields],
            f"Create a {resource.title.lower()} (required: "
            + ", ".join(option_name(f.name) for f in resource.required_fields)
            + ").",
        )
    )

    # --- update -------------------------------------------------------------------------------
    if_match_option = keyword(
        "if_match",
        Annotated[
            str | None,
            typer.Option(help='Only if unchanged: the ETag ("1705311000123") read before, or *.'),
        ],
    )
    field_names = ", ".join(f.name for f in resource.fields)

    def update(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        object_id: str,
        if_match: str | None,
        clear: list[str] | None,
        **options: Any,
    ) -> None:
        values: dict[str, Any] = field_values(resource, options)
        for name in clear or []:
            if name not in resource.fields_by_name:
                raise fail(f"--clear: {name!r} is not one of: {field_names}")
            values[name] = None
        with new_client(api_key, base_url) as client, api_errors(base_url):
            updated = namespace(client).update(object_id, if_match=etag(if_match), **values)
        if not json_output:
            err.print(f"Updated {updated['id']}.")
        show(updated, json_output)

    update_fields = [
        keyword(
            f"field__{field.name}",
            Annotated[str | None, typer.Option(option_name(field.name), help=field.description)],
        )
        for field in resource.fields
    ]
    group.command("update")(
        make_command(
            "update",
            update,
            [
                keyword("object_id", id_argument, inspect.Parameter.empty),
                *connection_parameters(),
                if_match_option,
                keyword(
                    "clear",
                    Annotated[
                        list[str] | None,
                        typer.Option("--clear", help=f"Set this field to null ({field_names})."),
                    ],
                ),
                *update_fields,
            ],
            f"Update a {resource.title.lower()}: only the fields given change.",
        )
    )

    # --- delete -------------------------------------------------------------------------------
    def delete(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        object_id: str,
        if_match: str | None,
        yes: bool,
    ) -> None:
        if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete {object_id}?"):
            raise typer.Exit(code=1)
        with new_client(api_key, base_url) as client, api_errors(base_url):
            deleted = namespace(client).delete(object_id, if_match=etag(if_match))
        if json_output:
            print_json(deleted.to_dict())
        else:
            err.print(f"Deleted {deleted['id']}.")

    group.command("delete")(
        make_command(
            "delete",
            delete,
            [
                keyword("object_id", id_argument, inspect.Parameter.empty),
                *connection_parameters(),
                if_match_option,
                keyword(
                    "yes",
                    Annotated[
                        bool,
                        typer.Option("--yes", "-y", help="Do not ask (asked only on a terminal)."),
                    ],
                    False,
                ),
            ],
            f"Delete a {resource.title.lower()} for good.",
        )
    )
    return group


def events_app() -> typer.Typer:
    """``overplane events list|get``: the account's events (docs/api.md, "Events")."""
    group = typer.Typer(help="Events (/api/events) through the API.", no_args_is_help=True)

    def list_events(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        limit: int,
        all_pages: bool,
        offset: int | None,
        starting_after: str | None,
        ending_before: str | None,
        columns: str | None,
        event_type: str | None,
        **options: Any,
    ) -> None:
        bounds = {op: options[f"range__created_at__{op}"] for op in RANGE_OPERATORS}
        created_at = {op: value for op, value in bounds.items() if value is not None}
        shown = columns.split(",") if columns else ["id", "type", "created_at"]
        with new_client(api_key, base_url) as client, api_errors(base_url):
            page = client.events.list(
                limit=limit,
                offset=offset,
                starting_after=starting_after,
                ending_before=ending_before,
                type=event_type,
                created_at=created_at or None,
            )
            print_page(page, all_pages, json_output, shown, "events")

    created_ranges = [
        keyword(
            f"range__created_at__{op}",
            Annotated[
                str | None,
                typer.Option(f"--created-at-{op}", help=f"Only where created_at is {op} this."),
            ],
        )
        for op in RANGE_OPERATORS
    ]
    group.command("list")(
        make_command(
            "list",
            list_events,
            [
                *connection_parameters(),
                *paging_parameters(),
                keyword(
                    "event_type",
                    Annotated[
                        str | None,
                        typer.Option("--type", help="Only these types: appointment.* etc."),
                    ],
                ),
                *created_ranges,
            ],
            "List events, newest first.",
        )
    )

    def get(api_key: str | None, base_url: str, json_output: bool, event_id: str) -> None:
        with new_client(api_key, base_url) as client, api_errors(base_url):
            event = client.events.retrieve(event_id).to_dict()
        if json_output:
            print_json(event)
        else:
            table_console().print(object_table(event))

    group.command("get")(
        make_command(
            "get",
            get,
            [
                keyword(
                    "event_id",
                    Annotated[str, typer.Argument(help="The event's id (evt_…).")],
                    inspect.Parameter.empty,
                ),
                *connection_parameters(),
            ],
            "Show one event.",
        )
    )
    return group
