"""A lean HTTP/1.1 keep-alive transport for httpx, lent to the client by ``overplane import``.

Measured on an import (docs/performance.md, "Import and export"), httpcore's connection pool
cost the command more CPU per row than the server spent creating it: it scans every
connection on every request and release (quadratic in the concurrency), and looks for an
uninstalled ``sniffio`` on each request. This transport keeps a stack of idle connections to
the one origin an import talks to, writes each request in one ``write`` and reads a
``Content-Length`` (or chunked) response. Everything above it (the client's retries, errors,
idempotency keys, parsing) is the client's, unchanged; any failure is an
``httpx.TransportError``, which the client retries like any other.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx

#: The request extension set when this transport sent a request a second time itself.
RESENT = "overplane_resent"
#: The longest a response's head may be: far more than the API sends.
MAX_HEAD_BYTES = 65536

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to one origin over at most ``max_connections`` persistent connections."""

    def __init__(self, max_connections: int) -> None:
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: ssl.SSLContext | None = None

    async def _connect(self, url: httpx.URL, seconds: float | None) -> Connection:
        tls = url.scheme == "https"
        if tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        port = url.port or (443 if tls else 80)
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.open_connection(
                    url.host, port, ssl=self._ssl if tls else None, limit=MAX_HEAD_BYTES
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {url.host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle connection (or a new one) and read the response."""
        timeouts = request.extensions.get("timeout", {})
        async with self._slots:
            if self._idle:
                connection = self._idle.pop()
                try:
                    return await self._send(connection, request, timeouts.get("read"))
                except httpx.ReadError:
                    # The server may have closed an idle connection (its keep-alive timeout)
                    # just as it was reused: try once more on a new one, at once. Safe: every
                    # write the client sends carries an Idempotency-Key. Marked, so that a
                    # replay answering it is known as this run's own (transfer.ReplayWatch).
                    request.extensions[RESENT] = True
            connection = await self._connect(request.url, timeouts.get("connect"))
            return await self._send(connection, request, timeouts.get("read"))

    async def _send(
        self, connection: Connection, request: httpx.Request, seconds: float | None
    ) -> httpx.Response:
        try:
            async with asyncio.timeout(seconds):
                response, reusable = await self._exchange(connection, request)
        except TimeoutError as exc:
            connection[1].close()
            raise httpx.ReadTimeout("no response in time", request=request) from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            connection[1].close()
            raise httpx.ReadError(f"the connection failed: {exc!r}", request=request) from exc
        if reusable:
            self._idle.append(connection)
        else:
            connection[1].close()
        return response

    async def _exchange(
        self, connection: Connection, request: httpx.Request
    ) -> tuple[httpx.Response, bool]:
        reader, writer = connection
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        lines = [f"{request.method} {target} HTTP/1.1"]
        headers = request.headers
        if "host" not in headers:
            lines.append(f"Host: {request.url.netloc.decode('ascii')}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body and "content-length" not in headers:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        pairs = [line.split(":", 1) for line in header_lines]
        response_headers = [(name.strip(), value.strip()) for name, value in pairs]
        lowered = {name.lower(): value.lower() for name, value in response_headers}
        if "content-length" in lowered:
            content = await reader.readexactly(int(lowered["content-length"]))
        elif lowered.get("transfer-encoding") == "chunked":
            content = await read_chunked(reader)
        elif int(status) in (204, 304) or request.method == "HEAD":
            content = b""
        else:  # delimited by the connection's end
            content = await reader.read()
            return self._response(request, status, response_headers, content), False
        reusable = lowered.get("connection") != "close" and version == "HTTP/1.1"
        return self._response(request, status, response_headers, content), reusable

    @staticmethod
    def _response(
        request: httpx.Request, status: str, headers: list[tuple[str, str]], content: bytes
    ) -> httpx.Response:
        return httpx.Response(int(status), headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


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
