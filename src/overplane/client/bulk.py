"""Many creates of one resource at once, cheaply: what ``overplane import`` sends its rows with.

:class:`BulkCreates` sends each create as the :class:`~overplane.client.AsyncClient` would (the
same :class:`~overplane.client.calls.Call`, body bytes and ``Idempotency-Key``, through the
client's :func:`~overplane.client.clients.converse`: the same retries, backoff and typed
errors), but writes the request's bytes itself and reads the response itself, over
:class:`Connections`: persistent HTTP/1.1 connections to the one origin, one request at a time
on each (no pipelining). Measured on an import (docs/performance.md, "Import and export"),
httpx's ``Request``, ``Response``, ``URL`` and ``Headers`` objects cost the import process more
CPU per row than the server spent creating it; here the fixed part of every request (the
request line, ``Host``, ``Authorization``, …) is encoded once, and a response is a status, a
dict of headers and its body.

Any failure to get a response is an ``httpx.TransportError`` (``ConnectError``, ``ReadError``,
``ConnectTimeout``, ``ReadTimeout``), which the client's policy retries like any other.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from overplane.client.calls import new_call
from overplane.client.clients import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncClosing,
    Settings,
    converse,
)

__all__ = ["BulkCreates", "Connections", "LeanResponse"]

#: The longest a response's head may be: far more than the API sends.
MAX_HEAD_BYTES = 65536
#: The header of a replayed response (docs/api.md, "Safe retries"), lower-cased.
REPLAYED_HEADER = "idempotent-replayed"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeanResponse:
    """A response as :class:`Connections` reads it: what the client's policy and errors read
    of one (:class:`~overplane.client.errors.Response`), header names in lower case."""

    __slots__ = ("content", "headers", "reason_phrase", "resent", "status_code")

    def __init__(
        self,
        status_code: int,
        reason_phrase: str,
        headers: dict[str, str],
        content: bytes,
        resent: bool,
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content
        #: Whether :class:`Connections` sent the request a second time itself (a kept-alive
        #: connection the server had closed): a replay then answers this run's own request.
        self.resent = resent

    @property
    def is_success(self) -> bool:
        """A 2xx."""
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body, decoded (``ValueError`` if it is not JSON)."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<LeanResponse [{self.status_code} {self.reason_phrase}]>"


class Connections:
    """HTTP/1.1 to the origin of ``url`` over at most ``max_connections`` persistent
    connections, each carrying one request at a time; ``timeout`` seconds to connect, and
    again to get a response."""

    def __init__(self, url: httpx.URL, max_connections: int, timeout: float | None) -> None:
        self._tls = url.scheme == "https"
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{url}: the URL must be http or https")
        self._host = url.host
        self._port = url.port or (443 if self._tls else 80)
        self._timeout = timeout
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: ssl.SSLContext | None = None

    async def _connect(self) -> Connection:
        if self._tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        where = f"{self._host}:{self._port}"
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=MAX_HEAD_BYTES
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {where} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {where}: {exc}") from exc

    async def send(self, request: bytes) -> LeanResponse:
        """Send ``request`` (a whole HTTP/1.1 request, head and body) on an idle connection,
        or a new one, and read its response."""
        async with self._slots:
            resent = False
            if self._idle:
                connection = self._idle.pop()
                try:
                    return await self._send(connection, request, resent)
                except httpx.ReadError:
                    # The server may have closed an idle connection (its keep-alive timeout)
                    # just as it was reused: once more on a new one, at once. Safe: a create
                    # carries an Idempotency-Key; marked, so that a replay answering it is
                    # known as this run's own.
                    resent = True
            return await self._send(await self._connect(), request, resent)

    async def _send(self, connection: Connection, request: bytes, resent: bool) -> LeanResponse:
        try:
            async with asyncio.timeout(self._timeout):
                response, reusable = await exchange(connection, request, resent)
        except TimeoutError as exc:
            connection[1].close()
            raise httpx.ReadTimeout("no response in time") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            connection[1].close()
            raise httpx.ReadError(f"the connection failed: {exc!r}") from exc
        if reusable:
            self._idle.append(connection)
        else:
            connection[1].close()
        return response

    async def aclose(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def exchange(
    connection: Connection, request: bytes, resent: bool
) -> tuple[LeanResponse, bool]:
    """Write ``request``, read the response (``Content-Length``, chunked, or to the end of
    the connection); the response and whether the connection may carry another request."""
    reader, writer = connection
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, status, *reason = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"a malformed header line: {line!r}")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    code = int(status)
    reusable = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        content = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        content = await read_chunked(reader)
    elif code in (204, 304) or 100 <= code < 200:
        content = b""
    else:  # delimited by the connection's end
        content = await reader.read()
        reusable = False
    phrase = reason[0] if reason else ""
    return LeanResponse(code, phrase, headers, content, resent), reusable


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (RFC 9112 §7.1), trailers dropped."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _ignore(data: Any) -> None:
    """A create's result, unread: an import needs only whether it succeeded."""


class BulkCreates(AsyncClosing):
    """Creates of the resource at ``path`` (``/api/crm/appointment``), up to
    ``max_connections`` at once; the other arguments (and their defaults from the
    environment) are :class:`~overplane.client.AsyncClient`'s. Use ``async with``."""

    def __init__(
        self,
        path: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 16,
    ) -> None:
        settings = Settings(api_key, base_url, timeout, max_retries, headers)
        url = httpx.URL(settings.base_url + path)
        self._path = path
        self._policy = settings.policy
        self._connections = Connections(url, max_connections, settings.timeout)
        fixed = {"Host": url.netloc.decode("ascii"), **settings.headers}
        lines = [f"POST {url.raw_path.decode('ascii')} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in fixed.items()]
        self._head = encode_lines(lines)

    def request(self, body: bytes, headers: tuple[tuple[str, str], ...]) -> bytes:
        """The bytes of one create: the fixed head, the call's headers, its body."""
        lines = [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        return b"%b%b\r\n%b" % (self._head, encode_lines(lines), body)

    async def create(self, fields: Mapping[str, Any], idempotency_key: str) -> bool:
        """Create an object of ``fields`` sent with ``idempotency_key``: True when this call
        created it, False when the server replayed an earlier request's (the object was
        already there before). Raises what :meth:`~overplane.client.AsyncClient.send` raises."""
        call = new_call(
            "POST", self._path, _ignore, payload=fields, idempotency_key=idempotency_key
        )
        sendings = 0
        replayed = False

        async def send(request: bytes) -> LeanResponse:
            nonlocal sendings, replayed
            sendings += 1
            response = await self._connections.send(request)
            # A replay of a later sending answers this call's own earlier one (its response
            # was lost): this call created the object.
            first = sendings == 1 and not response.resent
            replayed = first and response.headers.get(REPLAYED_HEADER, "").lower() == "true"
            return response

        request = self.request(call.body or b"", call.headers)
        await converse(call, request, send, self._policy)
        return not replayed

    async def close(self) -> None:
        """Close the connections."""
        await self._connections.aclose()


def encode_lines(lines: list[str]) -> bytes:
    """Header lines as bytes, each ended by CRLF; a line break inside a value (which would
    forge a header) is refused."""
    text = "".join(f"{line}\r\n" for line in lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise httpx.LocalProtocolError("a header value holds a line break")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise httpx.LocalProtocolError(f"a header is not Latin-1 text: {exc}") from None
