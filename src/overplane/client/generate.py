"""Writes ``client/resources.py``: typed classes for the shipped resources, from their
declarations, so that IDEs and mypy know each object's fields and each method's arguments.

Run ``python -m overplane.client.generate`` after changing a declaration;
``tests/test_client.py`` fails while the file is stale. Resources added at run time
(``OVERPLANE_EXTRA_RESOURCES``) need no generated code: the client serves them with the generic
namespace (``**fields``) and a class made at import.
"""

from __future__ import annotations

import sys
from pathlib import Path

from overplane.declarations import EXTRA, RESOURCES, Field, Resource

TARGET = Path(__file__).with_name("resources.py")

HEADER = '''"""Typed objects and namespaces of the shipped resources. GENERATED from the declarations by
``python -m overplane.client.generate``: do not edit (tests/test_client.py fails when stale).
"""

from __future__ import annotations

from typing import Any

from overplane.client.calls import NOT_GIVEN, NotGiven
from overplane.client.namespaces import (
    AsyncSender,
    IsNull,
    Range,
    RangeOrNull,
    ResourceCalls,
    Sender,
    list_request,
)
from overplane.client.objects import APIObject, AsyncPage, Deleted, Page
'''

PAGE_ARGUMENTS = (
    "        limit: int | None = None,\n"
    "        offset: int | None = None,\n"
    "        starting_after: str | None = None,\n"
    "        ending_before: str | None = None,\n"
)


def shipped() -> tuple[Resource, ...]:
    """The resources of the package itself (not those of OVERPLANE_EXTRA_RESOURCES)."""
    return tuple(r for r in RESOURCES if r not in EXTRA.resources)


def class_name(resource: Resource) -> str:
    """``PartyLink`` for party-link."""
    return resource.title.replace(" ", "")


def namespace_name(resource: Resource) -> str:
    """``PartyLinks`` for party-link."""
    return "".join(word.capitalize() for word in resource.plural.split())


def attribute_name(resource: Resource) -> str:
    """``party_links``: the client's attribute for the resource."""
    return resource.plural.replace(" ", "_").replace("-", "_")


def _value_type(field: Field) -> str:
    return "str" if field.required else "str | None"


def _update_type(field: Field) -> str:
    return "str | NotGiven" if field.required else "str | NotGiven | None"


def _filter_type(field: Field) -> str:
    return "str | RangeOrNull | None" if field.time_range else "str | IsNull | None"


def _object_class(resource: Resource) -> str:
    lines = [
        f"class {class_name(resource)}(APIObject):",
        f'    """{resource.description}"""',
        "",
        "    __slots__ = ()",
        f'    OBJECT = "{resource.event_name}"',
        "    id: str",
        "    created_at: str",
        "    updated_at: str",
        *(f"    {f.name}: {_value_type(f)}" for f in resource.fields),
    ]
    return "\n".join(lines) + "\n"


def _namespace(resource: Resource, *, asynchronous: bool) -> str:
    obj = class_name(resource)
    name = ("Async" if asynchronous else "") + namespace_name(resource)
    sender = "AsyncSender" if asynchronous else "Sender"
    page = "AsyncPage" if asynchronous else "Page"
    define = "async def" if asynchronous else "def"
    wait = "await " if asynchronous else ""
    noun = resource.title.lower()
    article = "an" if noun[0] in "aeiou" else "a"
    required = [f for f in resource.fields if f.required]
    optional = [f for f in resource.fields if not f.required]
    create_args = [f"        {f.name}: str,\n" for f in required]
    create_args += [f"        {f.name}: str | NotGiven | None = NOT_GIVEN,\n" for f in optional]
    update_args = [f"        {f.name}: {_update_type(f)} = NOT_GIVEN,\n" for f in resource.fields]
    filter_args = [
        f"        {f.name}: {_filter_type(f)} = None,\n" for f in resource.filterable_fields
    ]
    filter_args += [
        "        created_at: Range | None = None,\n",
        "        updated_at: Range | None = None,\n",
    ]
    fields = "".join(f'            "{f.name}": {f.name},\n' for f in resource.fields)
    filters = "".join(f'            "{f.name}": {f.name},\n' for f in resource.filterable_fields)
    filters += '            "created_at": created_at,\n            "updated_at": updated_at,\n'
    return f'''class {name}(ResourceCalls[{obj}]):
    """``client.{attribute_name(resource)}``: {resource.plural} at ``{resource.path}``."""

    def __init__(self, client: {sender}) -> None:
        super().__init__("{resource.path}", {obj})
        self._client = client

    {define} create(
        self,
        *,
{"".join(create_args)}        idempotency_key: str | None = None,
    ) -> {obj}:
        """Create {article} {noun} (a retry reuses ``idempotency_key``: never two)."""
        fields: dict[str, Any] = {{
{fields}        }}
        return {wait}self._client.send(self._create_call(fields, idempotency_key))

    {define} retrieve(self, id: str, /) -> {obj}:
        """The {noun} with this id."""
        return {wait}self._client.send(self._retrieve_call(id))

    {define} update(
        self,
        id: str,
        /,
        *,
{"".join(update_args)}        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> {obj}:
        """Set the fields given (None clears an optional one); with ``if_match``, only if the
        {noun} has not changed since that ETag."""
        fields: dict[str, Any] = {{
{fields}        }}
        call = self._update_call(id, fields, if_match, idempotency_key)
        return {wait}self._client.send(call)

    {define} delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the {noun} for good."""
        return {wait}self._client.send(self._delete_call(id, if_match, idempotency_key))

    {define} list(
        self,
        *,
{PAGE_ARGUMENTS}{"".join(filter_args)}    ) -> {page}[{obj}]:
        """A page of {resource.plural}, newest first; ``.auto_paging_iter()`` walks them all."""
        filters: dict[str, Any] = {{
{filters}        }}
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return {wait}self._client.list_page(request, {obj})
'''


def source() -> str:
    """The text ``client/resources.py`` must hold."""
    resources = shipped()
    parts = [HEADER]
    for resource in resources:
        parts.append(_object_class(resource))
        parts.append(_namespace(resource, asynchronous=False))
        parts.append(_namespace(resource, asynchronous=True))
    sync_attributes = "".join(f"    {attribute_name(r)}: {namespace_name(r)}\n" for r in resources)
    async_attributes = "".join(
        f"    {attribute_name(r)}: Async{namespace_name(r)}\n" for r in resources
    )
    entries = "".join(
        f'    "{r.path}": ({namespace_name(r)}, Async{namespace_name(r)}, {class_name(r)}),\n'
        for r in resources
    )
    parts.append(
        f'''class ResourceNamespaces:
    """The shipped resources' namespaces of :class:`~overplane.client.Client`."""

{sync_attributes}

class AsyncResourceNamespaces:
    """The shipped resources' namespaces of :class:`~overplane.client.AsyncClient`."""

{async_attributes}

#: Collection path -> (sync namespace, async namespace, object class).
GENERATED: dict[str, tuple[Any, Any, type[APIObject]]] = {{
{entries}}}
'''
    )
    return "\n\n".join(parts)


def main() -> None:
    """Rewrite ``client/resources.py``; say whether it changed."""
    text = source()
    changed = not TARGET.exists() or TARGET.read_text() != text
    TARGET.write_text(text)
    print(f"{TARGET}: {'rewritten' if changed else 'up to date'}", file=sys.stderr)


if __name__ == "__main__":
    main()
