"""The API's routes, derived from the resource declarations: five operations per resource.

Nothing here is written per resource: :func:`resource_routes` turns any :class:`Resource` into
its collection route (list, create) and its object route (retrieve, update, delete).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from overplane.auth.keys import Principal
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
)
from overplane.http.list_query import ListQueryParser
from overplane.http.preconditions import etag, if_match_versions, if_none_match_hits
from overplane.storage.database import Database, Executor, Row
from overplane.storage.objects import CursorNotFound, ObjectStore, Scope

JSON = "application/json"
Endpoint = Callable[[Request], Awaitable[Response]]
#: Methods whose request body is read (and, with an Idempotency-Key, fingerprinted).
BODY_METHODS = frozenset({"POST", "PATCH"})


@dataclass(frozen=True, slots=True)
class Services:
    """What handlers need beyond the request: the database and the write policies."""

    db: Callable[[], Database]
    idempotency_ttl_ms: Callable[[], int]


def state_of(request: Request) -> dict[str, Any]:
    """The per-request state the app and the dispatcher fill in."""
    state: dict[str, Any] = request.scope["state"]
    return state


def scope_of(request: Request) -> Scope:
    """The account and mode the caller may see (the app authenticates before routing)."""
    principal: Principal = state_of(request)["principal"]
    return principal.scope


def executor_of(request: Request) -> Executor:
    """Where this request's statements run: the idempotency transaction, or the pool."""
    executor: Executor = state_of(request)["executor"]
    return executor


def reject_query(request: Request) -> None:
    """400 parameter_unknown for any query parameter: only lists take them."""
    for name, _ in request.query_params.multi_items():
        raise ParameterUnknown(f"Received unknown query parameter: {name}.", param=name)


def json_object(request: Request) -> dict[str, object]:
    """The request body (read by the dispatcher) as a JSON object, content type checked."""
    body: bytes = state_of(request)["body"]
    check_content_type(request.headers.get("content-type"), body)
    return decode_object(body)


class MethodDispatch:
    """The ASGI app of one path: picks the handler by method, else 405 with ``Allow``.

    Being a plain ASGI app (not a function endpoint), it receives every method from the
    router, so the 405 and its Allow header are rendered by the one error renderer. A write
    with an ``Idempotency-Key`` runs inside the idempotency transaction.
    """

    def __init__(self, handlers: dict[str, Endpoint], services: Services) -> None:
        self.handlers = handlers
        self.services = services
        self.allowed = sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])})

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        handler = self.handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(scope["method"], self.allowed)
        request = Request(scope, receive)
        state = state_of(request)
        db = self.services.db()
        state["executor"] = db
        state["body"] = await read_body(request) if method in BODY_METHODS else b""
        key = request.headers.get(idempotency.HEADER)
        if key is None or method not in idempotency.METHODS:
            response = await handler(request)
        else:
            fingerprint = idempotency.IdempotentRequest.of(
                scope_of(request), key, method, scope["path"], state["body"]
            )

            async def execute(executor: Executor) -> Response:
                state["executor"] = executor
                return await handler(request)

            response = await idempotency.run_idempotently(
                db, fingerprint, state["request_id"], self.services.idempotency_ttl_ms(), execute
            )
        await response(scope, receive, send)


def resource_routes(resource: Resource, services: Services) -> list[Route]:
    """The collection and object routes of ``resource``."""
    renderer = rendering.ObjectRenderer(resource)
    list_parser = ListQueryParser(resource)
    store = ObjectStore(resource)
    name = resource.title.lower()

    def missing(object_id: str) -> ResourceMissing:
        return ResourceMissing(f"No such {name}: '{object_id}'", param="id")

    def object_response(row: Row, status_code: int = 200, **headers: str) -> Response:
        headers["ETag"] = etag(row[2])
        return Response(
            renderer.object(row), status_code=status_code, media_type=JSON, headers=headers
        )

    async def precondition_failed(request: Request, object_id: str) -> APIError:
        # The conditional write matched nothing: tell "gone" from "changed since you read it".
        if await store.retrieve(executor_of(request), scope_of(request), object_id) is None:
            return missing(object_id)
        return PreconditionFailed(
            f"The {name} has changed since the version in If-Match; fetch it again.",
            param="If-Match",
        )

    async def list_objects(request: Request) -> Response:
        query = list_parser.parse(request.query_params.multi_items())
        try:
            page = await store.list(executor_of(request), scope_of(request), query)
        except CursorNotFound as exc:
            cursor = request.query_params[exc.parameter]
            raise ParameterInvalid(
                f"{exc.parameter} names no {name} of this account: '{cursor}'",
                param=exc.parameter,
            ) from None
        return Response(renderer.page(page.rows, page.total, page.has_more), media_type=JSON)

    async def create_object(request: Request) -> Response:
        reject_query(request)
        values = validate_fields(resource, json_object(request), partial=False)
        row = await store.create(executor_of(request), scope_of(request), values)
        return object_response(row, 201, Location=f"{resource.path}/{row[0]}")

    async def retrieve_object(request: Request) -> Response:
        reject_query(request)
        object_id = request.path_params["id"]
        row = await store.retrieve(executor_of(request), scope_of(request), object_id)
        if row is None:
            raise missing(object_id)
        if if_none_match_hits(request.headers.get("if-none-match"), row[2]):
            return Response(status_code=304, headers={"ETag": etag(row[2])})
        return object_response(row)

    async def update_object(request: Request) -> Response:
        reject_query(request)
        values = validate_fields(resource, json_object(request), partial=True)
        object_id = request.path_params["id"]
        versions = if_match_versions(request.headers.get("if-match"))
        row = None
        if versions != ():
            row = await store.update(
                executor_of(request), scope_of(request), object_id, values, versions
            )
        if row is None:
            raise (
                missing(object_id)
                if versions is None
                else await precondition_failed(request, object_id)
            )
        return object_response(row)

    async def delete_object(request: Request) -> Response:
        reject_query(request)
        object_id = request.path_params["id"]
        versions = if_match_versions(request.headers.get("if-match"))
        deleted = versions != () and await store.delete(
            executor_of(request), scope_of(request), object_id, versions
        )
        if not deleted:
            raise (
                missing(object_id)
                if versions is None
                else await precondition_failed(request, object_id)
            )
        return Response(rendering.deleted(object_id), media_type=JSON)

    return [
        Route(
            resource.path, MethodDispatch({"GET": list_objects, "POST": create_object}, services)
        ),
        Route(
            resource.path + "/{id}",
            MethodDispatch(
                {"GET": retrieve_object, "PATCH": update_object, "DELETE": delete_object}, services
            ),
        ),
    ]
