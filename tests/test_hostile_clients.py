"""Slow and hostile clients against a real ``overplane serve`` (uvicorn, the default), over raw
sockets: every error the server gives is the contract's JSON, with its connection closed;
headers, bodies and idle connections are bounded in time, headers in size and count,
connections in number; 5,000 slowloris connections neither delay a normal request nor stay
open past their deadline (``docs/deployment.md``, "Slow and hostile clients").

The HTTP layer does not touch the database, so these run on SQLite only; the JSON-level checks
(duplicate keys, lone surrogates) run on both backends in ``test_requests.py``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REQUEST_ID, RunningServer, ServerLauncher, new_api_key

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEP_ALIVE = 1


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerLauncher]:
    """One launcher for the module's servers (stopped at its end)."""
    started = ServerLauncher(tmp_path_factory.mktemp("hostile"))
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def served(launcher: ServerLauncher) -> tuple[RunningServer, str]:
    """One server with short deadlines, and its key."""
    key = new_api_key()
    server = launcher(
        f"sqlite:///{launcher.directory / 'hostile.sqlite3'}",
        OVERPLANE_BOOTSTRAP_KEY=key,
        OVERPLANE_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        OVERPLANE_HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        OVERPLANE_HTTP_SEND_TIMEOUT_SECONDS="1",
        OVERPLANE_HTTP_KEEP_ALIVE_SECONDS=str(KEEP_ALIVE),
        OVERPLANE_LOG_FORMAT="json",
    )
    return server, key


def exchange(port: int, data: bytes, *, wait: float = 10.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection and read until the server closes it (or ``wait``
    passes); what was read and how long the server took to close."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        started = time.monotonic()
        if data:
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            raise AssertionError(f"the connection was still open after {wait} s") from None
        except ConnectionResetError:
            pass
        return received, time.monotonic() - started


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in ``data`` (each with a Content-Length)."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        found.append((int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return found


def assert_json_error(data: bytes, status: int, code: str) -> dict[str, Any]:
    """``data`` is exactly one response: the contract's error JSON with ``status`` and
    ``code``, a Request-Id equal to the body's, and ``Connection: close``."""
    [(got_status, headers, body)] = responses(data)
    assert got_status == status, data
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"type", "code", "message", "request_id"}, error
    assert error["code"] == code
    assert error["type"] == ("api_error" if status >= 500 else "invalid_request_error")
    assert REQUEST_ID.match(error["request_id"])
    assert headers["request-id"] == error["request_id"]
    return error


MALFORMED = {
    # the case: uvicorn answered it in plain text
    "content-length-smaller-than-body": b"POST /api/crm/appointment HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}xxxx",
    "request-line": b"GARBAGE\r\n\r\n",
    "bad-version": b"GET / HTTP/9.7\r\nHost: x\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "control-character-in-header": b"GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n",
    "bytes-in-url": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "duplicate-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "negative-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "chunk-size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunked-and-length": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "tls-hello": bytes.fromhex("160301020001") + b"\x00" * 64,
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_http_is_a_json_400(served: tuple[RunningServer, str], data: bytes) -> None:
    """Bytes that are not HTTP/1.1: 400 request_malformed as JSON, and the connection closed."""
    server, _ = served
    received, _ = exchange(server.port, data)
    error = assert_json_error(received, 400, "request_malformed")
    assert "Traceback" not in error["message"]


OVERSIZED = {
    "one-long-header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "long-url": b"GET /?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "many-headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: a\r\n" % n for n in range(150))
    + b"\r\n",
    # never ends: without a bound httptools would buffer it all
    "endless-header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 2_000_000,
}


@pytest.mark.parametrize("data", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_oversized_headers_are_a_json_431(served: tuple[RunningServer, str], data: bytes) -> None:
    """Headers over 16 KiB or 100 fields: 431 headers_too_large, read to the end (the client
    still sending gets its answer, not a reset) and closed."""
    server, _ = served
    received, _ = exchange(server.port, data)
    assert_json_error(received, 431, "headers_too_large")


def test_headers_just_within_the_limits_are_served(served: tuple[RunningServer, str]) -> None:
    """99 extra fields and 15 KB of headers are still a normal request."""
    server, key = served
    head = b"GET /api/crm/appointment HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += b"Authorization: Bearer " + key.encode() + b"\r\nX-Pad: " + b"p" * 14_000 + b"\r\n"
    head += b"".join(b"X-%d: a\r\n" % n for n in range(95))
    received, _ = exchange(server.port, head + b"\r\n")
    [(status, _, body)] = responses(received)
    assert status == 200, received[:300]
    assert json.loads(body)["data"] == []


@pytest.mark.parametrize(
    "data",
    [b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ab"],
    ids=["request-line-only", "half-a-header"],
)
def test_headers_that_do_not_arrive_in_time_are_a_json_408(
    served: tuple[RunningServer, str], data: bytes
) -> None:
    """Headers not complete within the header timeout: 408 request_timeout, then closed."""
    server, _ = served
    received, took = exchange(server.port, data)
    assert_json_error(received, 408, "request_timeout")
    assert HEADER_TIMEOUT - 0.1 <= took <= HEADER_TIMEOUT + 3, took


def test_a_body_that_does_not_arrive_in_time_is_a_json_408_and_writes_nothing(
    served: tuple[RunningServer, str],
) -> None:
    """A body shorter than its Content-Length: 408 after the body timeout, nothing created."""
    server, key = served
    head = (
        b"POST /api/crm/appointment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    received, took = exchange(server.port, head + b'{"customer_name": "slow"')
    assert_json_error(received, 408, "request_timeout")
    assert BODY_TIMEOUT - 0.1 <= took <= BODY_TIMEOUT + 3, took
    with server.client(key) as client:
        assert client.get("/api/crm/appointment").json()["total"] == 0


def test_a_connection_that_sends_nothing_is_closed_silently(
    served: tuple[RunningServer, str],
) -> None:
    """A connection that never sends a byte (a browser's spare one) is closed after the
    header timeout without an answer: there was no request to answer."""
    server, _ = served
    received, took = exchange(server.port, b"")
    assert received == b""
    assert HEADER_TIMEOUT - 0.1 <= took <= HEADER_TIMEOUT + 3, took


def test_an_idle_kept_alive_connection_is_closed(served: tuple[RunningServer, str]) -> None:
    """After a response, an idle connection is closed after the keep-alive timeout."""
    server, _ = served
    received, took = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, _, _)] = responses(received)
    assert status == 200
    assert took <= KEEP_ALIVE + 3, took


def test_a_client_that_stops_reading_is_cut_off(served: tuple[RunningServer, str]) -> None:
    """Pipelined requests whose answers are never read: once the server's send buffer stays
    full for the send timeout the connection is dropped, so no request waits forever."""
    server, _ = served
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request * 400)
        time.sleep(4)  # the send timeout is 1 s; the watchdog looks every 0.5 s
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    document = len(
        subprocess.run(
            ["curl", "-s", server.base_url + "/openapi.json"], capture_output=True, check=True
        ).stdout
    )
    assert received < 400 * document, (received, document)


def test_connections_beyond_the_limit_get_a_json_503(launcher: ServerLauncher) -> None:
    """Past OVERPLANE_HTTP_MAX_CONNECTIONS a new connection is answered 503 and closed; the
    ones already open are served."""
    server = launcher(
        f"sqlite:///{launcher.directory / 'limited.sqlite3'}",
        OVERPLANE_HTTP_MAX_CONNECTIONS="5",
    )
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        time.sleep(0.3)
        received, _ = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_json_error(received, 503, "unavailable")
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


# --- slowloris --------------------------------------------------------------------------------

SLOW_CONNECTIONS = 5000
SLOWLORIS_TIMEOUT = 15.0


def raise_file_limit(wanted: int) -> None:
    """Raise this process's soft open-file limit to ``wanted`` (fail if the hard one is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.fail(f"the hard open-file limit {hard} is below {wanted}")
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def slowloris(port: int, base_url: str) -> dict[str, Any]:
    """Open :data:`SLOW_CONNECTIONS` connections that send a request line and then one header
    byte every two seconds; time normal requests (curl, a process of its own) while they are
    all open; then wait for the server to close them. The figures."""
    opened: list[float] = []
    closed: list[float] = []
    answered_408 = 0

    async def slow_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered_408
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        received = b""

        async def trickle() -> None:
            while True:
                await asyncio.sleep(2)
                writer.write(b"a")

        trickler = asyncio.create_task(trickle())
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionError:
            pass
        finally:
            trickler.cancel()
            closed.append(time.monotonic())
            writer.close()
        if received.startswith(b"HTTP/1.1 408"):
            answered_408 += 1

    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for _ in range(SLOW_CONNECTIONS // 250):
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(250))
        )
        opened += [time.monotonic()] * len(batch)
        tasks += [asyncio.create_task(slow_client(*pair)) for pair in batch]
    all_open = time.monotonic()
    latencies = []
    for _ in range(5):
        curl = await asyncio.create_subprocess_exec(
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            base_url + "/healthz",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await curl.communicate()
        code, seconds = out.decode().split()
        assert code == "200"
        latencies.append(float(seconds))
        await asyncio.sleep(0.5)
    still_open_while_measuring = SLOW_CONNECTIONS - len(closed)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=SLOWLORIS_TIMEOUT + 30)
    lifetimes = [c - o for o, c in zip(sorted(opened), sorted(closed), strict=True)]
    return {
        "opened": len(opened),
        "closed": len(closed),
        "answered_408": answered_408,
        "seconds_to_open_all": round(all_open - started, 2),
        "open_while_measuring": still_open_while_measuring,
        "normal_request_seconds": latencies,
        "last_closed_after_seconds": round(max(closed) - started, 2),
        "shortest_lifetime": round(min(lifetimes), 2),
        "longest_lifetime": round(max(lifetimes), 2),
    }


def test_slowloris_neither_delays_a_normal_request_nor_stays_open(
    launcher: ServerLauncher, tmp_path: Path
) -> None:
    """5,000 connections that trickle their headers: a normal request is still answered
    within 1 s while they are all open, and every one of them is closed (with a 408) once the
    header timeout passes."""
    raise_file_limit(SLOW_CONNECTIONS + 1000)
    server = launcher(
        f"sqlite:///{tmp_path / 'slowloris.sqlite3'}",
        OVERPLANE_HTTP_HEADER_TIMEOUT_SECONDS=str(SLOWLORIS_TIMEOUT),
    )
    figures = asyncio.run(slowloris(server.port, server.base_url))
    print(f"\nslowloris: {figures}")
    assert figures["opened"] == figures["closed"] == figures["answered_408"] == SLOW_CONNECTIONS
    assert figures["open_while_measuring"] == SLOW_CONNECTIONS
    assert max(figures["normal_request_seconds"]) < 1.0, figures
    assert figures["shortest_lifetime"] >= SLOWLORIS_TIMEOUT - 1, figures
    assert figures["longest_lifetime"] <= SLOWLORIS_TIMEOUT + 10, figures
