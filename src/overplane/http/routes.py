"""The API's routes, derived from the resource declarations: five operations per resource.

Nothing here is written per resource: a :class:`ResourceEndpoint` serves any
:class:`Resource` with a method per operation (list and create on its collection path;
retrieve, update and delete on its object paths), and :class:`ApiRouter` finds a path's
endpoint with one dictionary lookup, however many resources there are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from overplane import rendering
from overplane.declarations import Resource
from overplane.http import idempotency
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
from overplane.http.messages import ApiRequest, Reply
from overplane.http.preconditions import IfMatch, etag, if_match, if_none_match_hits
from overplane.storage.database import Database, Executor
from overplane.storage.events import EventOrigin
from overplane.storage.listing import CursorNotFound, ListQuery, Page
from overplane.storage.objects import ObjectStore, StoredObject
from overplane.storage.tenant import Tenant
from overplane.validation.list_query import ListQueryParser, QueryParser

Handler = Callable[[ApiRequest], Awaitable[Reply]]
T = TypeVar("T")
Header = tuple[str, str]
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


async def list_reply(
    request: ApiRequest,
    parser: QueryParser,
    fetch: Callable[[Executor, Tenant, ListQuery], Awaitable[Page[T]]],
    render: Callable[[Page[T]], bytes],
    noun: str,
) -> Reply:
    """Any list: the query string parsed, the page fetched for the request's tenant and
    rendered; a cursor naming nothing of the tenant's is 400 on its own parameter."""
    parameters = request.query()
    query = parser.parse(parameters)
    try:
        found = await fetch(request.executor, request.principal.tenant, query)
    except CursorNotFound as exc:
        cursor = dict(parameters)[exc.parameter]
        raise ParameterInvalid(
            f"{exc.parameter} names no {noun} of this account: '{cursor}'", param=exc.parameter
        ) from None
    return Reply(200, render(found))


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
            request.principal.tenant, key, method, request.path, request.body
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


class Endpoint:
    """A collection path and its objects' paths, served by a method per operation.

    :class:`ApiRouter` serves whatever :attr:`COLLECTION_METHODS` and :attr:`OBJECT_METHODS`
    name; any other method is a 405 listing these.
    """

    #: The HTTP method served by each of the class's methods, on the collection path ...
    COLLECTION_METHODS: ClassVar[Mapping[str, str]] = {"GET": "list"}
    #: ... and on an object's path (``/…/{id}``).
    OBJECT_METHODS: ClassVar[Mapping[str, str]] = {"GET": "retrieve"}
    #: Actions on one object (``/…/{id}/<action>``): action -> HTTP method -> method name.
    ACTIONS: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    #: The collection path, for example ``/api/crm/appointment``.
    path: str

    def handlers(self, methods: Mapping[str, str]) -> dict[str, Handler]:
        """The bound methods that serve ``methods`` (HTTP method -> method name)."""
        return {http_method: getattr(self, name) for http_method, name in methods.items()}


class ResourceEndpoint(Endpoint):
    """The five operations of one resource, a method each, all derived from its declaration.

    A resource that needs more (or less) subclasses this and overrides the methods it changes.
    Every accepted write records its event with the change (``storage/events.py``) unless
    ``events`` is off.
    """

    COLLECTION_METHODS: ClassVar[Mapping[str, str]] = {"GET": "list", "POST": "create"}
    OBJECT_METHODS: ClassVar[Mapping[str, str]] = {
        "GET": "retrieve",
        "PATCH": "update",
        "DELETE": "delete",
    }

    def __init__(self, resource: Resource, *, events: bool = True) -> None:
        self.resource = resource
        self.path = resource.path
        self.renderer = rendering.ObjectRenderer(resource)
        self.list_parser = ListQueryParser(resource)
        self.store = ObjectStore(resource)
        self.name = resource.title.lower()
        self.events = events

    def origin(self, request: ApiRequest) -> EventOrigin | None:
        """What the event of this write records of its request (None: events are off)."""
        if not self.events:
            return None
        return EventOrigin(request.request_id, request.header(idempotency.HEADER))

    def missing(self, object_id: str) -> ResourceMissing:
        """404 for an id this tenant has no object with."""
        return ResourceMissing(f"No such {self.name}: '{object_id}'", param="id")

    def object_reply(self, stored: StoredObject, status: int = 200, *headers: Header) -> Reply:
        """The object as the API returns it, with its ETag."""
        etag_header = ("etag", etag(stored.updated_at))
        return Reply(status, self.renderer.object(stored), (etag_header, *headers))

    async def write_refused(self, request: ApiRequest, condition: IfMatch | None) -> APIError:
        """Why a write by id matched nothing: the object is gone (404), or it has changed
        since the version in If-Match (412)."""
        object_id = request.object_id
        if condition is None:
            return self.missing(object_id)
        tenant = request.principal.tenant
        if await self.store.retrieve(request.executor, tenant, object_id) is None:
            return self.missing(object_id)
        return PreconditionFailed(
            f"The {self.name} has changed since the version in If-Match; fetch it again.",
            param="If-Match",
        )

    async def list(self, request: ApiRequest) -> Reply:
        """A page of objects, filtered and paged by the query string."""

        def render(page: Page[StoredObject]) -> bytes:
            return self.renderer.page(page.items, page.total, page.has_more)

        return await list_reply(request, self.list_parser, self.store.list, render, self.name)

    async def create(self, request: ApiRequest) -> Reply:
        """A new object from the body's fields: 201 with its Location."""
        reject_query(request)
        values = validate_fields(self.resource, json_object(request), partial=False)
        tenant = request.principal.tenant
        stored = await self.store.create(request.executor, tenant, values, self.origin(request))
        location = ("location", f"{self.resource.path}/{stored.id}")
        return self.object_reply(stored, 201, location)

    async def retrieve(self, request: ApiRequest) -> Reply:
        """One object; 304 when If-None-Match names its current version."""
        reject_query(request)
        object_id = request.object_id
        tenant = request.principal.tenant
        stored = await self.store.retrieve(request.executor, tenant, object_id)
        if stored is None:
            raise self.missing(object_id)
        if if_none_match_hits(request.header(b"if-none-match"), stored.updated_at):
            return Reply(304, b"", (("etag", etag(stored.updated_at)),))
        return self.object_reply(stored)

    async def update(self, request: ApiRequest) -> Reply:
        """Set the body's fields (the others stay), if If-Match allows."""
        reject_query(request)
        values = validate_fields(self.resource, json_object(request), partial=True)
        condition = if_match(request.header(b"if-match"))
        stored = None
        if condition is None or condition.can_match:
            stored = await self.store.update(
                request.executor,
                request.principal.tenant,
                request.object_id,
                values,
                None if condition is None else condition.versions,
                self.origin(request),
            )
        if stored is None:
            raise await self.write_refused(request, condition)
        return self.object_reply(stored)

    async def delete(self, request: ApiRequest) -> Reply:
        """Delete the object, if If-Match allows."""
        reject_query(request)
        condition = if_match(request.header(b"if-match"))
        deleted = (condition is None or condition.can_match) and await self.store.delete(
            request.executor,
            request.principal.tenant,
            request.object_id,
            None if condition is None else condition.versions,
            self.origin(request),
        )
        if not deleted:
            raise await self.write_refused(request, condition)
        return Reply(200, rendering.deleted(request.object_id))


class ApiRouter:
    """Finds the endpoint of an /api path: a collection path, or an object path and its id."""

    def __init__(self, services: Services, endpoints: Iterable[Endpoint] = ()) -> None:
        self.services = services
        self.collections: dict[str, MethodDispatch] = {}
        self.objects: dict[str, MethodDispatch] = {}
        self.actions: dict[tuple[str, str], MethodDispatch] = {}
        for endpoint in endpoints:
            self.register(endpoint)

    def register(self, endpoint: Endpoint) -> None:
        """Serve ``endpoint`` at its collection path and its objects' paths."""
        path = endpoint.path
        if path in self.collections:
            raise ValueError(f"two endpoints for {path}")
        collection = endpoint.handlers(endpoint.COLLECTION_METHODS)
        self.collections[path] = MethodDispatch(collection, self.services)
        objects = endpoint.handlers(endpoint.OBJECT_METHODS)
        self.objects[path] = MethodDispatch(objects, self.services)
        for action, methods in endpoint.ACTIONS.items():
            self.actions[path, action] = MethodDispatch(endpoint.handlers(methods), self.services)

    def route_of(self, path: str) -> str:
        """The template of an /api ``path`` (``/api/crm/appointment/{id}``), for the metrics;
        ``unmatched`` if no route serves it. The same lookups as :meth:`__call__`."""
        if path in self.collections:
            return path
        parent, _, object_id = path.rpartition("/")
        if parent in self.objects and object_id:
            return parent + "/{id}"
        collection, _, _ = parent.rpartition("/")
        if (collection, object_id) in self.actions:
            return f"{collection}/{{id}}/{object_id}"
        return "unmatched"

    async def __call__(self, request: ApiRequest) -> Reply:
        """Serve ``request`` (its path already has no trailing slash), or 404 route_missing."""
        dispatch = self.collections.get(request.path)
        if dispatch is None:
            parent, _, object_id = request.path.rpartition("/")
            dispatch = self.objects.get(parent)
            if dispatch is None and self.actions:  # /…/{id}/<action>
                action = object_id
                collection, _, object_id = parent.rpartition("/")
                dispatch = self.actions.get((collection, action))
            if dispatch is None or not object_id:
                raise RouteMissing(
                    f"Unrecognized request URL ({request.scope['method']} {request.path})."
                )
            request.object_id = object_id
        return await dispatch(request)
