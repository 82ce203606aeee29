"""The API's routes, derived from the resource declarations: five operations per resource.

Nothing here is written per resource: :func:`resource_dispatches` turns any :class:`Resource`
into its collection path (list, create) and its object path (retrieve, update, delete), and
:class:`ApiRouter` finds a path's handlers with one dictionary lookup, however many resources
there are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from overplane.declarations import Resource
from overplane.http import idempotency, rendering
from overplane.http.bodies import (
    check_content_type,
    decode_object,
    read_body,
    validate_fields,
)
from overplane.http.errors import (
    APIError,
    MethodNotAllowed,
    ParameterInvalid,
    ParameterUnknown,
    PreconditionFailed,
    ResourceMissing,
    RouteMissing,
)
from overplane.http.list_query import ListQueryParser
from overplane.http.messages import ApiRequest, Reply
from overplane.http.preconditions import etag, if_match_versions, if_none_match_hits
from overplane.storage.database import Database, Executor, Row
from overplane.storage.objects import CursorNotFound, ObjectStore

Handler = Callable[[ApiRequest], Awaitable[Reply]]
#: Methods whose request body is read (and, with an Idempotency-Key, fingerprinted).
BODY_METHODS = frozenset({"POST", "PATCH"})


@dataclass(frozen=True, slots=True)
class Services:
    """What handlers need beyond the request: the database and the write policies."""

    db: Callable[[], Database]
    idempotency_ttl_ms: Callable[[], int]


def reject_query(request: ApiRequest) -> None:
    """400 parameter_unknown for any query parameter: only lists take them."""
    for name, _ in request.query():
        raise ParameterUnknown(f"Received unknown query parameter: {name}.", param=name)


def json_object(request: ApiRequest) -> dict[str, object]:
    """The request body (read by the dispatcher) as a JSON object, content type checked."""
    check_content_type(request.header(b"content-type"), request.body)
    return decode_object(request.body)


class MethodDispatch:
    """The handlers of one path: picks one by method, else 405 with ``Allow``.

    A write with an ``Idempotency-Key`` runs inside the idempotency transaction.
    """

    def __init__(self, handlers: dict[str, Handler], services: Services) -> None:
        self.handlers = handlers
        self.services = services
        self.allowed = sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])})

    async def __call__(self, request: ApiRequest) -> Reply:
        method = request.method
        handler = self.handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(request.scope["method"], self.allowed)
        if method in BODY_METHODS:
            request.body = await read_body(request)
        key = request.header(idempotency.HEADER)
        if key is None or method not in idempotency.METHODS:
            return await handler(request)
        fingerprint = idempotency.IdempotentRequest.of(
            request.principal.scope, key, method, request.path, request.body
        )

        async def execute(executor: Executor) -> Reply:
            request.executor = executor
            return await handler(request)

        return await idempotency.run_idempotently(
            self.services.db(),
            fingerprint,
            request.request_id,
            self.services.idempotency_ttl_ms(),
            execute,
        )


class ApiRouter:
    """Finds the handlers of an /api path: a collection path, or an object path and its id."""

    def __init__(self, dispatches: Iterable[tuple[str, MethodDispatch, MethodDispatch]]) -> None:
        self.collections: dict[str, MethodDispatch] = {}
        self.objects: dict[str, MethodDispatch] = {}
        for path, collection, objects in dispatches:
            self.collections[path] = collection
            self.objects[path] = objects

    async def __call__(self, request: ApiRequest) -> Reply:
        """Serve ``request`` (its path already has no trailing slash), or 404 route_missing."""
        dispatch = self.collections.get(request.path)
        if dispatch is None:
            parent, _, object_id = request.path.rpartition("/")
            dispatch = self.objects.get(parent)
            if dispatch is None or not object_id:
                raise RouteMissing(
                    f"Unrecognized request URL ({request.scope['method']} {request.path})."
                )
            request.object_id = object_id
        return await dispatch(request)


def resource_dispatches(
    resource: Resource, services: Services
) -> tuple[str, MethodDispatch, MethodDispatch]:
    """The path of ``resource`` with the handlers of its collection and of its objects."""
    renderer = rendering.ObjectRenderer(resource)
    list_parser = ListQueryParser(resource)
    store = ObjectStore(resource)
    name = resource.title.lower()

    def missing(object_id: str) -> ResourceMissing:
        return ResourceMissing(f"No such {name}: '{object_id}'", param="id")

    def object_reply(row: Row, status: int = 200, *headers: tuple[str, str]) -> Reply:
        return Reply(status, renderer.object(row), (("etag", etag(row[2])), *headers))

    async def precondition_failed(request: ApiRequest) -> APIError:
        # The conditional write matched nothing: tell "gone" from "changed since you read it".
        object_id = request.object_id
        if await store.retrieve(request.executor, request.principal.scope, object_id) is None:
            return missing(object_id)
        return PreconditionFailed(
            f"The {name} has changed since the version in If-Match; fetch it again.",
            param="If-Match",
        )

    async def list_objects(request: ApiRequest) -> Reply:
        parameters = request.query()
        query = list_parser.parse(parameters)
        try:
            page = await store.list(request.executor, request.principal.scope, query)
        except CursorNotFound as exc:
            cursor = dict(parameters)[exc.parameter]
            raise ParameterInvalid(
                f"{exc.parameter} names no {name} of this account: '{cursor}'",
                param=exc.parameter,
            ) from None
        return Reply(200, renderer.page(page.rows, page.total, page.has_more))

    async def create_object(request: ApiRequest) -> Reply:
        reject_query(request)
        values = validate_fields(resource, json_object(request), partial=False)
        row = await store.create(request.executor, request.principal.scope, values)
        return object_reply(row, 201, ("location", f"{resource.path}/{row[0]}"))

    async def retrieve_object(request: ApiRequest) -> Reply:
        reject_query(request)
        object_id = request.object_id
        row = await store.retrieve(request.executor, request.principal.scope, object_id)
        if row is None:
            raise missing(object_id)
        if if_none_match_hits(request.header(b"if-none-match"), row[2]):
            return Reply(304, b"", (("etag", etag(row[2])),))
        return object_reply(row)

    async def update_object(request: ApiRequest) -> Reply:
        reject_query(request)
        values = validate_fields(resource, json_object(request), partial=True)
        versions = if_match_versions(request.header(b"if-match"))
        row = None
        if versions != ():
            row = await store.update(
                request.executor, request.principal.scope, request.object_id, values, versions
            )
        if row is None:
            raise (
                missing(request.object_id)
                if versions is None
                else await precondition_failed(request)
            )
        return object_reply(row)

    async def delete_object(request: ApiRequest) -> Reply:
        reject_query(request)
        versions = if_match_versions(request.header(b"if-match"))
        deleted = versions != () and await store.delete(
            request.executor, request.principal.scope, request.object_id, versions
        )
        if not deleted:
            raise (
                missing(request.object_id)
                if versions is None
                else await precondition_failed(request)
            )
        return Reply(200, rendering.deleted(request.object_id))

    return (
        resource.path,
        MethodDispatch({"GET": list_objects, "POST": create_object}, services),
        MethodDispatch(
            {"GET": retrieve_object, "PATCH": update_object, "DELETE": delete_object}, services
        ),
    )
