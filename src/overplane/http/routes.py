"""The API's routes, derived from the resource declarations: five operations per resource.

Nothing here is written per resource: :func:`resource_routes` turns any :class:`Resource` into
its collection route (list, create) and its object route (retrieve, update, delete).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from overplane.auth.keys import Principal
from overplane.declarations import Resource
from overplane.http import rendering
from overplane.http.bodies import (
    MAX_BODY_BYTES,
    check_content_type,
    decode_object,
    validate_fields,
)
from overplane.http.errors import (
    BodyTooLarge,
    MethodNotAllowed,
    ParameterInvalid,
    ParameterUnknown,
    ResourceMissing,
)
from overplane.http.list_query import ListQueryParser
from overplane.storage.database import Database
from overplane.storage.objects import CursorNotFound, ObjectStore, Scope

JSON = "application/json"
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Stores:
    """The object stores, one per resource; filled in when the database opens."""

    by_name: dict[str, ObjectStore] = field(default_factory=dict)

    def open(self, resources: tuple[Resource, ...], db: Database) -> None:
        """Build each resource's store on ``db``."""
        self.by_name = {r.name: ObjectStore(r, db) for r in resources}


def principal_of(request: Request) -> Principal:
    """The authenticated caller; the app authenticates every /api request before routing."""
    principal: Principal = request.scope["state"]["principal"]
    return principal


def scope_of(request: Request) -> Scope:
    """The account and mode the caller may see."""
    return principal_of(request).scope


def reject_query(request: Request, allowed: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The query parameters, or 400 parameter_unknown for one the operation does not take."""
    query = request.query_params.multi_items()
    for name, _ in query:
        if name not in allowed:
            raise ParameterUnknown(f"Received unknown query parameter: {name}.", param=name)
    return query


async def read_body(request: Request) -> bytes:
    """The whole request body, refusing (413) to read more than the contract's cap."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(request: Request) -> dict[str, object]:
    """The request body as a JSON object, checked for size and content type."""
    body = await read_body(request)
    check_content_type(request.headers.get("content-type"), body)
    return decode_object(body)


class MethodDispatch:
    """The ASGI app of one path: picks the handler by method, else 405 with ``Allow``.

    Being a plain ASGI app (not a function endpoint), it receives every method from the
    router, so the 405 and its Allow header are rendered by the one error renderer.
    """

    def __init__(self, handlers: dict[str, Endpoint]) -> None:
        self.handlers = handlers
        self.allowed = sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])})

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        handler = self.handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(scope["method"], self.allowed)
        response = await handler(Request(scope, receive))
        await response(scope, receive, send)


def resource_routes(resource: Resource, stores: Stores) -> list[Route]:
    """The collection and object routes of ``resource``."""
    renderer = rendering.ObjectRenderer(resource)
    list_parser = ListQueryParser(resource)

    def store() -> ObjectStore:
        return stores.by_name[resource.name]

    def missing(object_id: str) -> ResourceMissing:
        return ResourceMissing(f"No such {resource.title.lower()}: '{object_id}'", param="id")

    async def list_objects(request: Request) -> Response:
        query = list_parser.parse(request.query_params.multi_items())
        try:
            page = await store().list(scope_of(request), query)
        except CursorNotFound as exc:
            cursor = request.query_params[exc.parameter]
            raise ParameterInvalid(
                f"{exc.parameter} names no {resource.title.lower()} of this account: '{cursor}'",
                param=exc.parameter,
            ) from None
        return Response(renderer.page(page.rows, page.total, page.has_more), media_type=JSON)

    async def create_object(request: Request) -> Response:
        reject_query(request)
        values = validate_fields(resource, await json_object(request), partial=False)
        row = await store().create(scope_of(request), values)
        location = f"{resource.path}/{row[0]}"
        return Response(
            renderer.object(row), status_code=201, media_type=JSON, headers={"Location": location}
        )

    async def retrieve_object(request: Request) -> Response:
        reject_query(request)
        object_id = request.path_params["id"]
        row = await store().retrieve(scope_of(request), object_id)
        if row is None:
            raise missing(object_id)
        return Response(renderer.object(row), media_type=JSON)

    async def update_object(request: Request) -> Response:
        reject_query(request)
        values = validate_fields(resource, await json_object(request), partial=True)
        object_id = request.path_params["id"]
        row = await store().update(scope_of(request), object_id, values)
        if row is None:
            raise missing(object_id)
        return Response(renderer.object(row), media_type=JSON)

    async def delete_object(request: Request) -> Response:
        reject_query(request)
        object_id = request.path_params["id"]
        if not await store().delete(scope_of(request), object_id):
            raise missing(object_id)
        return Response(rendering.deleted(object_id), media_type=JSON)

    return [
        Route(resource.path, MethodDispatch({"GET": list_objects, "POST": create_object})),
        Route(
            resource.path + "/{id}",
            MethodDispatch(
                {"GET": retrieve_object, "PATCH": update_object, "DELETE": delete_object}
            ),
        ),
    ]
