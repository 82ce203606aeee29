"""Where a webhook may be sent: URL rules, and the guard against server-side request forgery.

A webhook URL is chosen by an API user, and the server sends requests to it from inside the
operator's network. Unless the operator allows it (``allow_private``), a delivery must never
reach a private, loopback, link-local or otherwise non-public address, whatever the URL says:
``http://10.0.0.5/``, ``http://localhost/``, a name whose DNS answer is ``127.0.0.1``, or an
IPv6 spelling of any of them. The check runs at delivery time on the addresses DNS returns,
and the sender then connects to exactly those addresses (``sender.deliver``), so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot slip through.

``check_url_syntax`` is the cheap part, without DNS, for the API to call when an endpoint is
created or updated.

Standard library only: the API layer imports this module to validate URLs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "DestinationError",
    "DestinationRefused",
    "HostNotResolved",
    "ResolvedTarget",
    "check_url_syntax",
    "non_public_reason",
    "resolve_public",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# One label of a host name once IDNA-encoded: letters, digits, hyphens, not at either end.
# Underscores are allowed because real DNS names carry them (e.g. _acme-challenge hosts).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.ASCII)
# Whitespace and control characters: urlsplit silently drops some of them (tab, CR, LF),
# which would make the checked URL differ from the stored one, so they are refused first.
_UNSAFE = re.compile(r"[\x00-\x20\x7f]", re.ASCII)

# IPv6 ranges that carry an IPv4 address, checked as that IPv4 address.
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)


class DestinationError(Exception):
    """A webhook URL cannot be delivered to; ``str(error)`` says why, for the attempt log."""


class DestinationRefused(DestinationError):
    """The URL is malformed, or names or resolves to an address deliveries must not reach."""


class HostNotResolved(DestinationError):
    """DNS gave no address for the URL's host (or did not answer in time); worth a retry."""


class ResolvedTarget(NamedTuple):
    """A webhook URL taken apart, with the addresses that passed the check.

    ``host`` is the name to send as ``Host`` and to present and verify in TLS: lowercase,
    IDNA-encoded (ASCII), without a trailing dot; an IP literal is written without brackets.
    ``path`` is the path with its query (at least ``/``); a fragment is never sent.
    ``addresses`` are the IP addresses to connect to, in the resolver's order.
    """

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the host, with the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def host_is_ip(self) -> bool:
        """Whether the URL names an IP address rather than a host name."""
        return _ip_literal(self.host) is not None

    def url_for(self, address: str) -> str:
        """The URL with its host replaced by ``address``: what to connect to."""
        netloc = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{netloc}:{self.port}{self.path}"


class _ParsedUrl(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _parse(url: str) -> _ParsedUrl:
    """The parts of an acceptable webhook URL, or DestinationRefused saying what is wrong."""
    if not isinstance(url, str):
        raise DestinationRefused("the url must be a string")
    if not url:
        raise DestinationRefused("the url is empty")
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"the url is longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE.search(url):
        raise DestinationRefused("the url contains whitespace or control characters")
    if "\\" in url:
        # Browsers read a backslash as a slash and urlsplit does not: refuse the ambiguity.
        raise DestinationRefused("the url contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise DestinationRefused(f"the url is malformed ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DestinationRefused("the url must start with https:// or http://")
    if "@" in parts.netloc:
        raise DestinationRefused("the url must not contain a user name or password")
    if not parts.hostname:
        raise DestinationRefused("the url has no host")
    if "%" in parts.hostname:
        # Percent-encoded names and IPv6 zones ("fe80::1%25eth0") have no place in a webhook.
        raise DestinationRefused("the url's host must not contain '%'")
    if port is None:
        if parts.netloc.endswith(":"):
            raise DestinationRefused("the url's port is empty")
        port = _DEFAULT_PORTS[scheme]
    elif not 1 <= port <= 65535:
        raise DestinationRefused("the url's port must be between 1 and 65535")
    host = _normalize_host(parts.hostname, bracketed=parts.netloc.startswith("["))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _ParsedUrl(scheme, host, port, path)


def _normalize_host(hostname: str, *, bracketed: bool) -> str:
    """The host in the one form used for DNS, ``Host`` and TLS, or DestinationRefused."""
    if bracketed:
        # urlsplit keeps whatever is between the brackets; only an IPv6 address belongs there.
        try:
            return str(ipaddress.IPv6Address(hostname))
        except ValueError:
            raise DestinationRefused("the url's host is not a valid IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(hostname))
    except ValueError:
        pass
    name = hostname.removesuffix(".")
    try:
        # The standard library's IDNA codec (IDNA 2003) also lowercases; the same ASCII name
        # is then used for DNS, the Host header and TLS, so they cannot disagree.
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise DestinationRefused("the url's host is not a valid host name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise DestinationRefused("the url's host is not a valid host name")
    if labels[-1].isdigit():
        # Not a dotted quad (checked above) yet numeric: 2130706433, 127.1, 0177.0.0.1 are
        # other spellings of IPv4 addresses that resolvers accept; refuse the disguise.
        raise DestinationRefused("the url's host is neither a host name nor a dotted IPv4 address")
    return ascii_name


def non_public_reason(address: IPAddress) -> str | None:
    """Why deliveries must not go to ``address`` ("a loopback address", …), or None if public.

    IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
    NAT64 ``64:ff9b::/96``) are judged by that IPv4 address too.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = None
        form = ""
        if address.ipv4_mapped is not None:
            # A connection to ::ffff:a.b.c.d is a connection to a.b.c.d, nothing else: judge
            # it by that address alone (Python 3.11 calls the whole range private).
            reason = non_public_reason(address.ipv4_mapped)
            if reason is None:
                return None
            return f"an IPv4-mapped IPv6 form of {reason} ({address.ipv4_mapped})"
        if address in _SIX_TO_FOUR:
            embedded, form = address.sixtofour, "a 6to4 IPv6 form of"
        elif address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            form = "a NAT64 IPv6 form of"
        elif address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        elif address.teredo is not None:
            return "a Teredo tunnel address"
        if embedded is not None:
            reason = non_public_reason(embedded)
            if reason is not None:
                return f"{form} {reason} ({embedded})"
        if address.is_site_local:
            return "a site-local address"
    # The specific properties first, for a clear message; is_global last, as the catch-all
    # for everything IANA lists as not globally reachable (documentation ranges, benchmarking,
    # 192.0.0.0/24, …). is_global alone is not enough: in some Python versions it is true for
    # parts of the multicast and reserved ranges.
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not globally reachable"
    return None


def _local_name(host: str) -> bool:
    # RFC 6761: localhost and every name under it resolve to loopback by definition.
    return host == "localhost" or host.endswith(".localhost")


def check_url_syntax(url: str, *, allow_private: bool = True) -> str | None:
    """Why ``url`` cannot be a webhook URL, or None if it can (no DNS lookup: cheap).

    Only http and https, a valid host, no user name or password, a port from 1 to 65535,
    no whitespace, at most 2,048 characters. With ``allow_private=False`` a URL whose host
    is written as a non-public IP address, or is ``localhost``, is refused up front too;
    names are only judged at delivery time, by ``resolve_public``.
    """
    try:
        parsed = _parse(url)
    except DestinationRefused as error:
        return str(error)
    if not allow_private:
        literal = _ip_literal(parsed.host)
        reason = non_public_reason(literal) if literal is not None else None
        if reason is None and _local_name(parsed.host):
            reason = "a loopback name"
        if reason is not None:
            return f"the url's host {parsed.host} is {reason}; webhooks go to public addresses"
    return None


async def resolve_public(
    url: str, allow_private: bool, *, dns_timeout: float = 5.0
) -> ResolvedTarget:
    """Parse ``url``, resolve its host, and check every address it resolves to.

    Raises DestinationRefused if the URL is not acceptable (``check_url_syntax``) or, unless
    ``allow_private``, if ANY address is not public (``non_public_reason``): one bad answer
    among good ones refuses the whole delivery, since the connection could use any of them.
    Raises HostNotResolved when DNS gives no address within ``dns_timeout`` seconds. The
    lookup runs through the event loop's ``getaddrinfo`` (a thread), never blocking the loop.
    """
    parsed = _parse(url)
    literal = _ip_literal(parsed.host)
    if not allow_private and _local_name(parsed.host):
        # Loopback by definition: refused without asking DNS (which may say anything).
        raise DestinationRefused(
            f"refused: {parsed.host} is a loopback name; webhooks are delivered only to public "
            "addresses"
        )
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            async with asyncio.timeout(dns_timeout):
                addresses = await _lookup(parsed.host, parsed.port)
        except TimeoutError:
            # The resolver thread runs on (it cannot be cancelled); the delivery does not wait.
            raise HostNotResolved(
                f"DNS lookup of {parsed.host} timed out after {dns_timeout:g} s"
            ) from None
    if not allow_private:
        for address in addresses:
            reason = non_public_reason(address)
            if reason is not None:
                shown = (
                    f"{parsed.host} is"
                    if literal is not None
                    else f"{parsed.host} resolves to {address},"
                )
                raise DestinationRefused(
                    f"refused: {shown} {reason}; webhooks are delivered only to public addresses"
                )
    return ResolvedTarget(
        url=url,
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        path=parsed.path,
        addresses=tuple(str(address) for address in addresses),
    )


async def _lookup(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotResolved(f"DNS lookup of {host} failed: {error}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # IPv6 link-local answers may carry a scope ("fe80::1%eth0"); ip_address keeps it.
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotResolved(f"DNS lookup of {host} returned no IP address")
    return addresses
