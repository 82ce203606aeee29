"""Sending webhooks: the address guard (``addresses``) and one delivery (``sender.deliver``).

Receivers are real servers on 127.0.0.1 that each test starts on a free port (plain asyncio,
so each one can misbehave exactly as needed: answer late, trickle, stream without end,
redirect, hang up, or serve TLS for a name of its own). No test sends traffic anywhere but
loopback: refusals happen before any connection, and public addresses are only classified,
never contacted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from overplane.webhooks import SIGNATURE_HEADER, sign, verify
from overplane.webhooks.addresses import (
    DestinationRefused,
    HostNotResolved,
    ResolvedTarget,
    check_url_syntax,
    non_public_reason,
    resolve_public,
)
from overplane.webhooks.sender import Attempt, deliver, new_client

if TYPE_CHECKING:
    from socket import _GetAddrInfoResult

T = TypeVar("T")
SECRET = "whsec_sender_tests"
BODY = b'{"id":"evt_1","type":"appointment.created"}'


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on an event loop whose DNS answers come from ``DNS`` (see StubResolverLoop)."""
    with asyncio.Runner(loop_factory=StubResolverLoop) as runner:
        return runner.run(coroutine)


#: DNS answers for the tests' names. A name not listed gets "name not known"; IP literals
#: and ``localhost`` (answered from /etc/hosts) go to the system's resolver.
DNS: dict[str, list[str]] = {
    "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "mixed.example": ["93.184.216.34", "10.0.0.7"],  # one bad answer among good ones
    "mapped.example": ["::ffff:127.0.0.1"],
    "hooks.xn--exmple-cua.de": ["93.184.216.34"],
    "receiver.example": ["127.0.0.1"],
}
SLOW_DNS = "slow.example"
LOOKUPS: list[str] = []


class StubResolverLoop(asyncio.SelectorEventLoop):
    """An event loop that answers name lookups from ``DNS``.

    Tests choose the DNS answers (a name with a private address among public ones, a name
    that rebinds to loopback) and no query leaves the machine. Every lookup of a name is
    recorded in LOOKUPS, so a test can prove a delivery looked its name up only once: httpx
    (through anyio) resolves through this same loop method.
    """

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name == "localhost" or _is_ip(name):
            return await super().getaddrinfo(
                host, port, family=family, type=type, proto=proto, flags=flags
            )
        LOOKUPS.append(name)
        if name == SLOW_DNS:
            await asyncio.sleep(10)
        if name not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers: _GetAddrInfoResult = []
        for address in DNS[name]:
            # numeric: the system builds the answer tuples without any lookup
            answers += await super().getaddrinfo(
                address, port, family=family, type=type, proto=proto,
                flags=flags | socket.AI_NUMERICHOST,
            )  # fmt: skip
        return answers


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- receivers -----------------------------------------------------------------------------


class Received(NamedTuple):
    """One request as a receiver read it: header names lowercased."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    names: list[str]  # every header name as sent, lowercased, repeats kept


Behaviour = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1: reads one request per connection, records it,
    then lets ``behaviour`` write (or not write) the response."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[Received] = []
        self.server_names: list[str | None] = []  # TLS SNI, one per handshake
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ")
            headers: dict[str, str] = {}
            names: list[str] = []
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    names.append(name.strip().lower())
                    headers[names[-1]] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, target, headers, body, names))
            await self.behaviour(writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    @asynccontextmanager
    async def running(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()


def respond(status: int = 200, body: bytes = b"ok", extra: str = "") -> Behaviour:
    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
        )
        await writer.drain()

    return behaviour


def after(delay: float, then: Behaviour) -> Behaviour:
    async def behaviour(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        await then(writer)

    return behaviour


def trickle(head: bytes, tail: bytes, every: float) -> Behaviour:
    """Send ``head`` at once, then ``tail`` one byte per ``every`` seconds: each read
    succeeds quickly, so only an overall deadline stops it."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        for byte in tail:
            await writer.drain()
            await asyncio.sleep(every)
            writer.write(bytes([byte]))

    return behaviour


def endless(sent: list[int]) -> Behaviour:
    """A 200 whose chunked body never ends; counts the bytes it managed to send."""

    async def behaviour(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16_384
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        while True:
            writer.write(frame)
            await writer.drain()
            sent[0] += len(chunk)

    return behaviour


async def hang_up(writer: asyncio.StreamWriter) -> None:
    """Read the request, then close without a word."""


def loopback(receiver: Receiver, host: str = "127.0.0.1", path: str = "/hooks") -> ResolvedTarget:
    """A checked target for a receiver, as resolve_public would give it (no DNS)."""
    return ResolvedTarget(
        url=f"http://{host}:{receiver.port}{path}",
        scheme="http",
        host=host,
        port=receiver.port,
        path=path,
        addresses=("127.0.0.1",),
    )


async def send(target: ResolvedTarget, **options: Any) -> Attempt:
    headers = {SIGNATURE_HEADER: sign(BODY, [SECRET], int(time.time()))}
    async with new_client() as client:
        return await deliver(client, target, BODY, headers, **options)


# --- the address guard ----------------------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/hooks", "loopback"),
    ("http://127.8.9.10:8080/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved|private"),
    ("http://255.255.255.255/", "not globally reachable|reserved|private"),
    ("http://192.0.2.1/", "private|not globally"),  # documentation range
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped IPv6 form of a loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped IPv6 form of a link-local"),
    ("http://[2002:7f00:1::1]/", "6to4 IPv6 form of a loopback"),
    ("http://[2002:0a00:0001::]/", "6to4 IPv6 form of a private"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 IPv6 form of a link-local"),
    ("http://[64:ff9b:1::1]/", "local-use NAT64"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://localhost/", "loopback"),  # a name: refused after DNS says 127.0.0.1 (or ::1)
    ("https://LocalHost.:8443/x", "loopback"),
    ("https://mixed.example/", "mixed.example resolves to 10.0.0.7, a private address"),
    ("https://mapped.example/", "IPv4-mapped IPv6 form of a loopback"),
    ("https://receiver.example/", "receiver.example resolves to 127.0.0.1, a loopback"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_private_destinations_are_refused_without_the_setting(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused, match=reason):
        run(resolve_public(url, allow_private=False))


def test_a_refusal_names_the_host_the_address_and_why() -> None:
    with pytest.raises(DestinationRefused) as refused:
        run(resolve_public("http://receiver.example:9/x", allow_private=False))
    assert str(refused.value) == (
        "refused: receiver.example resolves to 127.0.0.1, a loopback address; "
        "webhooks are delivered only to public addresses"
    )
    with pytest.raises(DestinationRefused) as refused:
        run(resolve_public("http://169.254.169.254/latest", allow_private=False))
    assert str(refused.value) == (
        "refused: 169.254.169.254 is a link-local address; "
        "webhooks are delivered only to public addresses"
    )
    LOOKUPS.clear()
    with pytest.raises(DestinationRefused, match="localhost is a loopback name"):
        run(resolve_public("http://api.localhost/", allow_private=False))
    assert LOOKUPS == []  # refused without asking DNS


def test_with_the_setting_private_destinations_resolve() -> None:
    target = run(resolve_public("http://localhost:8080/hooks?x=1#frag", allow_private=True))
    assert target.host == "localhost"
    assert target.port == 8080
    assert target.path == "/hooks?x=1"  # the fragment is never sent
    assert target.addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in target.addresses)
    assert run(resolve_public("http://10.0.0.1/", allow_private=True)).addresses == ("10.0.0.1",)


def test_public_addresses_pass_without_any_traffic() -> None:
    # IP literals are checked without DNS and nothing is sent: only the classification runs.
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert non_public_reason(ipaddress.ip_address(address)) is None, address
    target = run(resolve_public("https://[2606:4700:4700::1111]/in", allow_private=False))
    assert target.addresses == ("2606:4700:4700::1111",)
    assert target.host_header == "[2606:4700:4700::1111]"
    assert target.url_for(target.addresses[0]) == "https://[2606:4700:4700::1111]:443/in"


def test_a_name_with_only_public_addresses_passes_with_all_of_them_in_order() -> None:
    target = run(resolve_public("https://public.example/in", allow_private=False))
    assert target.addresses == tuple(DNS["public.example"])


def test_an_unresolvable_name_is_not_a_refusal_but_worth_a_retry() -> None:
    with pytest.raises(HostNotResolved, match=r"DNS lookup of no-such-host\.example failed"):
        run(resolve_public("https://no-such-host.example/hooks", allow_private=False))
    with pytest.raises(HostNotResolved, match=r"timed out after 0\.1 s"):
        run(resolve_public(f"https://{SLOW_DNS}/", allow_private=False, dns_timeout=0.1))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("example.com/hooks", "https:// or http://"),
        ("ftp://example.com/", "https:// or http://"),
        ("javascript:alert(1)", "https:// or http://"),
        ("file:///etc/passwd", "https:// or http://"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pass@example.com/", "user name or password"),
        ("https://user@example.com/", "user name or password"),
        ("https://example.com:0/", "between 1 and 65535"),
        ("https://example.com:65536/", "malformed"),
        ("https://example.com:port/", "malformed"),
        ("https://example.com:/", "port is empty"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\n", "whitespace"),
        ("https://example.com\\@evil.test/", "backslash"),
        ("https://exa_mple..com/", "not a valid host name"),
        ("https://-example.com/", "not a valid host name"),
        ("https://[not-ipv6]/", "malformed"),
        ("https://[::1/", "malformed"),
        ("https://[v1.x]/", "not a valid IPv6"),
        ("https://[fe80::1%25eth0]/", "must not contain '%'"),
        ("https://%6c%6f%63%61%6c%68%6f%73%74/", "must not contain '%'"),
        ("http://2130706433/", "neither a host name nor a dotted IPv4"),  # 127.0.0.1
        ("http://127.1/", "neither a host name nor a dotted IPv4"),
        ("http://0177.0.0.1/", "neither a host name nor a dotted IPv4"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_url_syntax_errors_are_found_without_dns(url: str, message: str) -> None:
    error = check_url_syntax(url)
    assert error is not None
    assert message in error
    with pytest.raises(DestinationRefused, match=message.replace("\\", "\\\\")):
        run(resolve_public(url, allow_private=True))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "http://example.com",
        "HTTPS://Example.COM:8443/a/b?c=d&e=f",
        "https://hooks.exämple.de/x",
        "https://example.com./",
        "https://_svc.example.com/",
        "https://93.184.216.34/",
        "https://[2606:4700:4700::1111]:8443/",
    ],
)
def test_good_urls_pass_the_syntax_check(url: str) -> None:
    assert check_url_syntax(url, allow_private=False) is None


def test_the_syntax_check_refuses_private_literals_only_when_asked() -> None:
    for url in ("http://127.0.0.1:3000/", "http://localhost/", "http://app.localhost/"):
        assert check_url_syntax(url) is None
        assert "webhooks go to public addresses" in str(check_url_syntax(url, allow_private=False))


def test_hosts_are_normalized_once_for_dns_host_and_tls() -> None:
    target = run(resolve_public("HTTPS://Hooks.ExÄmple.DE.:8443/p", allow_private=True))
    assert target.host == "hooks.xn--exmple-cua.de"
    assert target.host_header == "hooks.xn--exmple-cua.de:8443"
    assert target.scheme == "https"


_IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@given(address=_IPV4)
def test_every_ipv6_form_of_an_ipv4_address_is_judged_like_it(
    address: ipaddress.IPv4Address,
) -> None:
    forms = [
        ipaddress.IPv6Address(f"::ffff:{address}"),
        ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80)),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address)),
    ]
    public = non_public_reason(address) is None
    for form in forms:
        if not public:
            assert non_public_reason(form) is not None, form


@given(url=st.text(max_size=200))
def test_the_syntax_check_never_raises(url: str) -> None:
    check_url_syntax(url)
    check_url_syntax("https://" + url, allow_private=False)


# --- deliveries -----------------------------------------------------------------------------


def test_a_delivery_reaches_the_checked_address_with_its_host_name_and_signature() -> None:
    async def scenario() -> tuple[Attempt, Receiver]:
        async with Receiver(respond(200, b'{"received":true}')).running() as receiver:
            # hooks.invalid never resolves: the only way to reach the receiver is the
            # address that passed the check, with no DNS lookup in between.
            target = loopback(receiver, host="hooks.invalid", path="/in?x=1")
            return await send(target), receiver

    attempt, receiver = run(scenario())
    assert attempt.succeeded, attempt
    assert attempt == Attempt(200, None, attempt.duration_ms, '{"received":true}')
    assert sorted(receiver.received[0].names) == sorted(set(receiver.received[0].names))
    assert attempt.duration_ms > 0
    [request] = receiver.received
    assert request.method == "POST"
    assert request.target == "/in?x=1"
    assert request.headers["host"] == f"hooks.invalid:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["connection"] == "close"
    assert request.headers["user-agent"].startswith("Overplane-Webhooks/")
    assert request.body == BODY
    verify(request.body, request.headers["overplane-signature"], SECRET)


def test_caller_headers_replace_the_defaults_but_not_host_or_connection() -> None:
    async def scenario() -> Receiver:
        async with Receiver(respond(200)).running() as receiver:
            headers = {"content-type": "application/x-test", "HOST": "evil.test", "X-Id": "1"}
            async with new_client() as client:
                await deliver(client, loopback(receiver), BODY, headers)
            return receiver

    receiver = run(scenario())
    [request] = receiver.received
    assert request.headers["content-type"] == "application/x-test"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["connection"] == "close"
    assert request.headers["x-id"] == "1"
    assert sorted(request.names) == sorted(set(request.names))  # no header twice


def test_a_name_resolved_with_the_setting_is_delivered_to_and_looked_up_only_once() -> None:
    async def scenario() -> tuple[list[Attempt], Receiver]:
        async with Receiver(respond(204, b"")).running() as receiver:
            attempts = []
            for host in ("localhost", "receiver.example"):
                target = await resolve_public(f"http://{host}:{receiver.port}/", True)
                attempts.append(await send(target))
            return attempts, receiver

    LOOKUPS.clear()
    attempts, receiver = run(scenario())
    assert all(attempt.succeeded for attempt in attempts), attempts
    assert [a.status_code for a in attempts] == [204, 204]
    assert [r.headers["host"] for r in receiver.received] == [
        f"localhost:{receiver.port}",
        f"receiver.example:{receiver.port}",
    ]
    # resolve_public looked the name up; the delivery connected without a lookup of its own
    assert LOOKUPS == ["receiver.example"]


@pytest.mark.parametrize("status", [301, 302, 400, 404, 410, 500, 503])
def test_any_status_but_2xx_is_unsuccessful_and_redirects_are_not_followed(status: int) -> None:
    async def scenario() -> tuple[Attempt, list[Received]]:
        async with Receiver(respond(200)).running() as elsewhere:
            location = f"Location: http://127.0.0.1:{elsewhere.port}/stolen\r\n"
            async with Receiver(respond(status, b"nope", location)).running() as receiver:
                attempt = await send(loopback(receiver))
            return attempt, elsewhere.received

    attempt, elsewhere = run(scenario())
    assert not attempt.succeeded
    assert attempt.status_code == status
    assert attempt.error is None  # the receiver answered: the status says it all
    assert attempt.response_excerpt == "nope"
    assert elsewhere == []  # the redirect target never saw a request


def test_a_receiver_slower_than_the_timeout_fails_within_it() -> None:
    async def scenario() -> Attempt:
        async with Receiver(after(5, respond(200))).running() as receiver:
            return await send(loopback(receiver), timeout=0.3)

    attempt = run(scenario())
    assert not attempt.succeeded
    assert attempt.status_code is None
    assert attempt.error == "timed out: no response within 0.3 s"
    assert 300 <= attempt.duration_ms < 2_000


def test_cancelling_the_caller_cancels_the_delivery_instead_of_reporting_it() -> None:
    # The worker stops by cancelling its tasks: deliver must not turn that into an Attempt.
    async def scenario() -> bool:
        arrived = asyncio.Event()

        async def behaviour(writer: asyncio.StreamWriter) -> None:
            arrived.set()
            await asyncio.sleep(5)

        async with Receiver(behaviour).running() as receiver:
            task = asyncio.create_task(send(loopback(receiver), timeout=3.0))
            await asyncio.wait_for(arrived.wait(), 2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return True
            return False

    assert run(scenario())


def test_a_receiver_trickling_its_headers_cannot_stretch_the_deadline() -> None:
    # Each byte arrives well within any per-read timeout; the whole never does.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\nok"
    behaviour = trickle(b"", head, every=0.02)

    async def scenario() -> Attempt:
        async with Receiver(behaviour).running() as receiver:
            return await send(loopback(receiver), timeout=0.5)

    attempt = run(scenario())
    assert attempt.error == "timed out: no response within 0.5 s"
    assert attempt.duration_ms < 2_000


def test_a_receiver_trickling_its_body_fails_with_the_status_it_sent() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstarted "
    behaviour = trickle(head, b"." * 92, every=0.05)

    async def scenario() -> Attempt:
        async with Receiver(behaviour).running() as receiver:
            return await send(loopback(receiver), timeout=0.5)

    attempt = run(scenario())
    assert not attempt.succeeded
    assert attempt.status_code == 200
    assert attempt.error == "timed out: the response body did not finish within 0.5 s"
    assert attempt.response_excerpt.startswith("started ")
    assert attempt.duration_ms < 2_000


def test_an_endless_body_is_read_only_up_to_the_bound_then_the_connection_is_closed() -> None:
    sent = [0]

    async def scenario() -> Attempt:
        async with Receiver(endless(sent)).running() as receiver:
            attempt = await send(loopback(receiver), timeout=2.0, max_response_bytes=1000)
            await asyncio.sleep(0.2)  # the receiver notices the closed connection
            return attempt

    attempt = run(scenario())
    assert attempt.succeeded, attempt
    assert len(attempt.response_excerpt) <= 1000
    assert attempt.duration_ms < 2_000
    # we stopped reading long before the deadline: the receiver could send only as much as
    # the socket buffers hold (far from the ~100 MB a loopback link carries in 2 s)
    assert sent[0] < 32 * 1024 * 1024


def test_max_response_bytes_zero_reads_no_body() -> None:
    async def scenario() -> Attempt:
        async with Receiver(respond(200, b"ignored")).running() as receiver:
            return await send(loopback(receiver), max_response_bytes=0)

    attempt = run(scenario())
    assert attempt.succeeded
    assert attempt.response_excerpt == ""


def test_a_receiver_that_hangs_up_is_an_error_not_an_exception() -> None:
    async def scenario() -> Attempt:
        async with Receiver(hang_up).running() as receiver:
            return await send(loopback(receiver))

    attempt = run(scenario())
    assert not attempt.succeeded
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith(("protocol error", "connection broken"))


def test_nothing_listening_is_an_error_naming_the_address() -> None:
    async def scenario() -> tuple[Attempt, int]:
        async with Receiver(respond(200)).running() as receiver:
            port = receiver.port
        # the receiver is gone now; its port is closed
        target = ResolvedTarget(
            f"http://gone.invalid:{port}/", "http", "gone.invalid", port, "/", ("127.0.0.1",)
        )
        return await send(target, timeout=2.0), port

    attempt, port = run(scenario())
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith(f"could not connect: 127.0.0.1:{port} failed")


def test_the_next_address_is_tried_only_when_connecting_failed() -> None:
    async def scenario() -> tuple[Attempt, Receiver]:
        async with Receiver(respond(200)).running() as receiver:
            # the receiver listens on 127.0.0.1 only: 127.0.0.2 refuses the connection
            target = loopback(receiver)._replace(addresses=("127.0.0.2", "127.0.0.1"))
            attempt = await send(target)
        return attempt, receiver

    attempt, receiver = run(scenario())
    assert attempt.succeeded, attempt
    assert len(receiver.received) == 1


# --- TLS: the name in the URL is the name presented and verified ----------------------------


class Certificate(NamedTuple):
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for hooks.test, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=hooks.test",
            "-addext", "subjectAltName=DNS:hooks.test",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return Certificate(cert, key)


def tls_delivery(certificate: Certificate, host: str) -> tuple[Attempt, Receiver]:
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(certificate.cert, certificate.key)
    trust = ssl.create_default_context(cafile=str(certificate.cert))

    async def scenario() -> tuple[Attempt, Receiver]:
        async with Receiver(respond(200)).running(tls=server_tls) as receiver:
            target = loopback(receiver, host=host)._replace(
                scheme="https", url=f"https://{host}:{receiver.port}/hooks"
            )
            async with new_client(verify=trust) as client:
                attempt = await deliver(client, target, BODY, {}, timeout=3.0)
            return attempt, receiver

    return run(scenario())


def test_https_presents_and_verifies_the_host_name_while_connecting_to_the_checked_ip(
    certificate: Certificate,
) -> None:
    attempt, receiver = tls_delivery(certificate, "hooks.test")
    assert attempt.succeeded, attempt
    assert receiver.server_names == ["hooks.test"]  # SNI is the name, not 127.0.0.1
    assert receiver.received[0].headers["host"] == f"hooks.test:{receiver.port}"


def test_https_refuses_a_certificate_for_another_name(certificate: Certificate) -> None:
    attempt, receiver = tls_delivery(certificate, "other.test")
    assert not attempt.succeeded
    assert attempt.status_code is None
    assert attempt.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error
    assert receiver.received == []
    assert receiver.server_names == ["other.test"]


def test_a_client_from_new_client_ignores_proxy_settings_and_keeps_no_cookies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would swallow every request
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")

    async def scenario() -> tuple[list[Attempt], Receiver]:
        behaviour = respond(200, b"ok", "Set-Cookie: planted=1; Path=/\r\n")
        async with Receiver(behaviour).running() as receiver:
            target = loopback(receiver)
            async with new_client() as client:
                attempts = [await deliver(client, target, BODY, {}) for _ in range(2)]
                assert not client.cookies
            return attempts, receiver

    attempts, receiver = run(scenario())
    assert all(attempt.succeeded for attempt in attempts), attempts
    assert all("cookie" not in request.headers for request in receiver.received)


def test_httpx_timeouts_and_the_overall_deadline_agree_on_the_message() -> None:
    # A client with a tiny default timeout does not shorten the delivery's own deadline.
    async def scenario() -> Attempt:
        receiver = Receiver(after(0.2, respond(200)))
        client = httpx.AsyncClient(timeout=0.01, trust_env=False)
        async with receiver.running(), client:
            return await deliver(client, loopback(receiver), BODY, {}, timeout=2.0)

    attempt = run(scenario())
    assert attempt.succeeded, attempt
