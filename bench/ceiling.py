"""The ceiling: the fastest an ASGI app can answer a retrieve on this HTTP server.

A minimal ASGI application with no framework. It checks the same ``Authorization: Bearer``
header the API checks (against the key in ``BENCH_CEILING_KEY``) and answers
``GET /api/crm/appointment/{id}`` with a canned appointment of the same size and shape as the
real one. The benchmark serves it exactly as ``overplane serve`` serves the API (uvicorn, uvloop,
httptools, one worker, no access log), so every figure can be stated as a fraction of it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/api/crm/appointment/"
_EXPECTED = f"Bearer {os.environ.get('BENCH_CEILING_KEY', '')}".encode("latin-1")
_OBJECT_TEMPLATE = (
    '{{"id":"{id}","created_at":"2024-01-15T09:30:00.123Z","updated_at":"2024-01-15T09:30:00.123Z",'
    '"customer_name":"a","customer_phone_number":null,"customer_skype":null,'
    '"customer_details":null,"scheduled_time":"b","status":"draft","calendar_event":null,'
    '"customer_email":"c","appointment_with":null,"party":null}}'
)
_JSON = (b"content-type", b"application/json")
_UNAUTHORIZED = b'{"error":{"type":"authentication_error","code":"api_key_invalid"}}'
_NOT_FOUND = b'{"error":{"type":"invalid_request_error","code":"route_missing"}}'
_OK = b'{"status":"ok"}'


def _authorized(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"authorization":
            return hmac.compare_digest(value, _EXPECTED)
    return False


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole application: health check, auth check, canned object."""
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, _OK)
    elif not _authorized(scope["headers"]):
        await _respond(send, 401, _UNAUTHORIZED)
    elif scope["method"] == "GET" and path.startswith(PREFIX):
        await _respond(send, 200, _OBJECT_TEMPLATE.format(id=path[len(PREFIX) :]).encode())
    else:
        await _respond(send, 404, _NOT_FOUND)
