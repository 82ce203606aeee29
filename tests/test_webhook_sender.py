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
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overplane.webhooks.addresses import (
    DestinationRefused,
    HostNotResolved,
    check_url_syntax,
    non_public_reason,
    resolve_public,
)

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
        run(resolve_public("http://localhost:9/x", allow_private=False))
    message = str(refused.value)
    assert message.startswith("refused: localhost resolves to ")
    assert "loopback address" in message


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
