"""uvicorn's httptools protocol, bounded against slow and hostile clients, with JSON errors.

uvicorn (0.54, httptools) bounds only the idle time between requests (``timeout_keep_alive``,
armed after a response). Measured before this module: a connection that sends nothing, or a
request line and then one header byte a second, is kept forever; a header of any size is
buffered whole (httptools keeps no limit); a malformed request gets a plain-text
``Invalid HTTP request received.``. :class:`GuardedHttpToolsProtocol` adds, per connection:

- **header time**: the request line and headers must arrive within
  ``OVERPLANE_HTTP_HEADER_TIMEOUT_SECONDS`` of the connection opening or of the request's
  first byte; then ``408 request_timeout`` (nothing is written to a connection that sent no
  byte of a request: browsers open spare connections).
- **body time**: the body within ``OVERPLANE_HTTP_BODY_TIMEOUT_SECONDS`` of the headers; then
  ``408`` if no response has started, and the connection is closed either way.
- **send time**: a client that stops reading its response (the write buffer stays full) is cut
  off after ``OVERPLANE_HTTP_SEND_TIMEOUT_SECONDS``, so its request does not wait forever.
- **header size and count**: ``OVERPLANE_HTTP_MAX_HEADER_BYTES`` of request line and headers
  and ``OVERPLANE_HTTP_MAX_HEADERS`` fields; then ``431 headers_too_large``. Completed fields
  are counted exactly; a field still arriving is bounded by the bytes received for it, so no
  more than the limit plus one read (256 KiB) is ever buffered.
- **connections**: beyond ``OVERPLANE_HTTP_MAX_CONNECTIONS`` open in this process, a new
  connection gets ``503 unavailable`` and is closed.
- **malformed HTTP**: ``400 request_malformed`` instead of uvicorn's plain text.

Every such answer is the contract's error JSON (``http/errors.py``) with a request id, and
closes the connection. Deadlines are checked by one timer per process that runs every
:data:`TICK_SECONDS` and looks at every open connection (5,000 connections: about 1 ms per
tick), instead of a timer per request: a request pays only a few attribute writes on its
path (docs/performance.md, "Slow clients"). A deadline is therefore kept to within a tick.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from overplane import metrics
from overplane.http.errors import (
    APIError,
    HeadersTooLarge,
    RequestMalformed,
    RequestTimeout,
    Unavailable,
    error_body,
)
from overplane.settings import Settings
from overplane.storage.ids import new_request_id

logger = logging.getLogger("overplane.http")

#: How often the deadlines of every open connection are checked.
TICK_SECONDS = 0.5

# What a connection is waiting for.
_IDLE = 0  # between requests: uvicorn's keep-alive timer runs
_HEADERS = 1  # the request line and headers
_BODY = 2  # the rest of the body
_APP = 3  # the application's answer (bounded by the database's timeouts, not the client)
_LINGER = 4  # refused: the answer is written, what the client still sends is read and dropped
_CLOSED = 5

#: How long a refused connection's further bytes are read and dropped before it is closed.
#: Closing a socket with unread bytes makes the kernel send a reset, and a client still
#: sending (a 300 KB header) would lose the answer with it.
LINGER_SECONDS = 2.0


@functools.cache
def _settings() -> Settings:
    """The settings, read once per process (uvicorn creates the protocol, not our code)."""
    return Settings.from_environ()


class _Refused(Exception):
    """Raised from a parser callback: answer with ``error`` and close."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


class _Watchdog:
    """One per server: every :data:`TICK_SECONDS`, closes the connections past a deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop = loop
        self.connections = connections
        self.handle: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        if self.handle is None:
            self.handle = self.loop.call_later(TICK_SECONDS, self.tick)

    def tick(self) -> None:
        self.handle = None
        now = self.loop.time()
        for connection in list(self.connections):
            if isinstance(connection, GuardedHttpToolsProtocol):
                connection.check_deadline(now)
        recorder = metrics.recorder()
        if recorder is not None:
            recorder.set_connections(len(self.connections))
        if self.connections:
            self.ensure_running()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.http_header_timeout_seconds
        self.body_timeout = settings.http_body_timeout_seconds
        self.send_timeout = settings.http_send_timeout_seconds
        self.max_header_bytes = settings.http_max_header_bytes
        self.max_headers = settings.http_max_headers
        self.max_connections = settings.http_max_connections
        self.phase = _HEADERS
        self.deadline = 0.0
        #: Bytes of the request line and the completed header fields (exact).
        self.header_bytes = 0
        #: Bytes received while the headers were incomplete (bounds a field still arriving).
        self.pending_header_bytes = 0
        self.write_paused_at = 0.0
        self.received_any = False

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection against the limit and start its header deadline."""
        super().connection_made(transport)
        watchdog = getattr(self.server_state, "overplane_watchdog", None)
        if watchdog is None:
            watchdog = _Watchdog(self.loop, self.connections)
            self.server_state.overplane_watchdog = watchdog  # type: ignore[attr-defined]
        watchdog.ensure_running()
        if len(self.connections) > self.max_connections:
            logger.warning(
                "refused a connection: %d open, OVERPLANE_HTTP_MAX_CONNECTIONS is %d",
                len(self.connections) - 1,
                self.max_connections,
            )
            self.refuse(Unavailable(1))
            return
        self.deadline = self.loop.time() + self.header_timeout

    def eof_received(self) -> None:
        """The client is done sending: the transport closes itself (a refused connection
        no longer lingers)."""
        if self.phase == _LINGER:
            self.phase = _CLOSED

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (uvicorn's bookkeeping) and its deadline."""
        self.phase = _CLOSED
        super().connection_lost(exc)

    def check_deadline(self, now: float) -> None:
        """Close this connection if it is past its deadline (called by the watchdog)."""
        if self.write_paused_at and now - self.write_paused_at > self.send_timeout:
            self.phase = _CLOSED
            if self.cycle is not None:
                self.cycle.disconnected = True
            self.transport.abort()  # its buffer will never drain: drop it
            return
        if not self.deadline or now < self.deadline or self.phase == _CLOSED:
            return
        if self.phase == _LINGER:
            self.phase = _CLOSED
            self.transport.abort()
            return
        if self.phase == _HEADERS and not self.received_any:
            self.phase = _CLOSED
            self.transport.close()  # nothing asked, nothing to answer
            return
        started = self.cycle is not None and self.cycle.response_started
        what = "headers" if self.phase == _HEADERS else "body"
        seconds = self.header_timeout if self.phase == _HEADERS else self.body_timeout
        if started:
            self.phase = _CLOSED
            self.transport.close()
            return
        self.refuse(
            RequestTimeout(f"The request's {what} did not arrive within {seconds:g} seconds.")
        )

    def refuse(self, error: APIError) -> None:
        """Answer ``error`` as the contract's JSON and close the connection (after a linger)."""
        self.phase = _CLOSED
        self.deadline = 0.0
        if self.cycle is not None:
            # The application may still be waiting for this request's body: whatever it
            # answers now is dropped, and it hears a disconnect.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.transport.is_closing():
            return
        request_id = new_request_id()
        body = error_body(error, request_id)
        head = [
            STATUS_LINE[error.status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"request-id: " + request_id.encode() + b"\r\n",
            *(
                f"{name.lower()}: {value}\r\n".encode("latin-1")
                for name, value in error.headers.items()
            ),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.phase = _LINGER
            self.deadline = self.loop.time() + LINGER_SECONDS
            self.transport.resume_reading()
        else:  # pragma: no cover - TCP transports can
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes httptools cannot parse, as the contract's JSON."""
        self.refuse(RequestMalformed(f"The request is not valid HTTP/1.1 ({msg.rstrip('.')})."))

    def pause_writing(self) -> None:
        """The client stopped reading: start the send deadline."""
        self.write_paused_at = self.loop.time()
        super().pause_writing()

    def resume_writing(self) -> None:
        """The client reads again."""
        self.write_paused_at = 0.0
        super().resume_writing()

    # -- bytes -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to the parser, refusing what breaks a bound; uvicorn's, otherwise."""
        if self.phase >= _LINGER:
            return
        self._unset_keepalive_if_required()
        self.received_any = True
        started_in = self.phase
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():  # pragma: no cover - no WebSocket routes
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self.refuse(cause.error)
            else:
                self.logger.warning("Invalid HTTP request received: %s", exc)
                self.send_400_response(str(exc) or "unparseable")
            return
        if self.phase == _HEADERS and started_in in (_IDLE, _HEADERS):
            # A field still arriving sits in httptools' buffer, out of the callbacks' sight.
            self.pending_header_bytes += len(data)
            if self.pending_header_bytes > self.max_header_bytes:
                self.refuse(self.headers_too_large())

    def headers_too_large(self) -> HeadersTooLarge:
        """The 431 for this connection's limits."""
        return HeadersTooLarge(
            f"The request line and headers must stay within {self.max_header_bytes} bytes "
            f"and {self.max_headers} fields."
        )

    # -- parser callbacks (they run inside feed_data) ------------------------------------

    def on_message_begin(self) -> None:
        """A request's first byte: its headers' deadline starts."""
        super().on_message_begin()
        self.phase = _HEADERS
        self.deadline = self.loop.time() + self.header_timeout
        self.header_bytes = 0
        self.pending_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        """Count the request target against the header bytes."""
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.max_header_bytes:
            raise _Refused(self.headers_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        """uvicorn's, counting each field against the header limits."""
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.max_header_bytes or len(self.headers) >= self.max_headers:
            raise _Refused(self.headers_too_large())
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The headers are in: the body's deadline starts."""
        self.phase = _BODY
        self.deadline = self.loop.time() + self.body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is in: no deadline while the application works."""
        super().on_message_complete()
        self.phase = _APP
        self.deadline = 0.0

    def on_response_complete(self) -> None:
        """Answered: idle until the next request (uvicorn's keep-alive timer)."""
        if self.phase == _APP:
            self.phase = _IDLE
        super().on_response_complete()
