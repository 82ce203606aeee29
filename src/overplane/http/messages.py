"""An API request as the handlers see it, and the reply they return.

The /api paths do not go through a web framework's request and response objects: a handler
reads what it needs straight from the ASGI scope (headers and the query string are parsed
only when asked for) and returns a :class:`Reply`, which :func:`send_reply` writes as two ASGI
messages. Measured on a point read, Starlette's routing, ``Request`` and ``Response`` were
about a tenth of the server's time (``docs/performance.md``).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from overplane.auth.keys import Principal
from overplane.storage.database import Executor

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class Reply(NamedTuple):
    """A response: status, JSON body and extra headers (lower-case names)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class ApiRequest:
    """One authenticated request to an /api path."""

    __slots__ = (
        "_headers",
        "body",
        "executor",
        "method",
        "object_id",
        "path",
        "principal",
        "receive",
        "request_id",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path: str,
        request_id: str,
        principal: Principal,
        executor: Executor,
    ) -> None:
        self.scope = scope
        self.receive = receive
        #: HEAD is served as GET (the server drops the body).
        self.method: str = "GET" if scope["method"] == "HEAD" else scope["method"]
        #: The path with any trailing slash folded away.
        self.path = path
        self.request_id = request_id
        self.principal = principal
        #: Where the request's statements run: the pool, or the idempotency transaction.
        self.executor = executor
        #: The request body, read by the dispatcher for methods that take one.
        self.body = b""
        #: The ``{id}`` of an object path, "" on a collection path.
        self.object_id = ""
        self._headers: dict[bytes, bytes] | None = None

    def header(self, name: bytes) -> str | None:
        """The first value of the header ``name`` (lower case), or None."""
        if self._headers is None:
            # reversed, so that the first of repeated headers wins (as in Starlette)
            self._headers = dict(reversed(self.scope["headers"]))
        value = self._headers.get(name)
        return None if value is None else value.decode("latin-1")

    def query(self) -> list[tuple[str, str]]:
        """The query parameters in order, repeats kept, blank values kept."""
        raw: bytes = self.scope["query_string"]
        return parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []


async def send_reply(send: Send, reply: Reply, request_id: str) -> None:
    """Write ``reply`` with Content-Type, Content-Length and Request-Id headers.

    A replayed idempotent reply already names its first request's id, which is kept.
    """
    status, body, extra = reply
    headers = [] if status == 304 else [JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(body))]
    replayed_id = False
    for name, value in extra:
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
        replayed_id = replayed_id or name == "request-id"
    if not replayed_id:
        headers.append((b"request-id", request_id.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
