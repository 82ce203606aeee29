"""Sending one webhook delivery: one POST, to an address that passed the check, bounded in
time and in what it reads back.

The request goes to the IP address ``addresses.resolve_public`` checked, never to a fresh DNS
answer (which could have changed in between: DNS rebinding). The URL given to httpx names that
address; the ``Host`` header and, for https, the TLS server name (SNI, and the name the
certificate must match) are the URL's host name, through httpcore's ``sni_hostname`` request
extension. Every delivery uses a connection of its own (``Connection: close``): a pooled
connection is keyed by address, and reusing one that was verified for another host name on
the same address would skip this host's certificate check.

Nothing here raises for what the network or the receiver does: every outcome is an
``Attempt``. Concurrency limits belong to the caller.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import NamedTuple

import httpx

from overplane import __version__
from overplane.webhooks.addresses import ResolvedTarget

__all__ = ["USER_AGENT", "Attempt", "deliver", "new_client"]

USER_AGENT = f"Overplane-Webhooks/{__version__}"


class Attempt(NamedTuple):
    """The outcome of one delivery attempt, as the attempt log records it.

    ``status_code`` is the receiver's status, or None if none arrived. ``error`` says what
    went wrong on the way (connection refused, timed out, TLS, protocol), or None; a
    receiver's non-2xx status is not an ``error``, it is the status. ``response_excerpt`` is
    the start of the response body (at most the bytes asked for), decoded as UTF-8 with
    replacement characters.
    """

    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str

    @property
    def succeeded(self) -> bool:
        """A 2xx status, and the exchange finished within the deadline."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def new_client(*, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An httpx client fit to send deliveries with ``deliver`` (use it for nothing else).

    It ignores proxy settings from the environment (a proxy would look the name up again,
    and would not carry the TLS server name), keeps no idle connections, never follows
    redirects, and accepts no cookies (a receiver must not be able to plant state that
    would be sent to another endpoint on the same address). ``verify`` is httpx's: True
    for the default trust store, or an ``ssl.SSLContext`` (tests trust their own CA).
    """
    return httpx.AsyncClient(
        verify=verify,
        trust_env=False,
        follow_redirects=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
    )


class _Progress:
    """How far one delivery got: kept outside the exchange so a timeout can report it."""

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.excerpt = bytearray()
        self.connect_failures: list[str] = []


class _Unreachable(Exception):
    """No address of the target accepted a connection (the failures are in the progress)."""


async def deliver(
    client: httpx.AsyncClient,
    target: ResolvedTarget,
    body: bytes,
    headers: Mapping[str, str],
    # One deadline for the whole exchange, applied inside (asyncio.timeout), because httpx's
    # timeouts are per operation and a trickling receiver would stretch them without end.
    timeout: float = 10.0,  # noqa: ASYNC109
    max_response_bytes: int = 64 * 1024,
) -> Attempt:
    """POST ``body`` to ``target`` and report what happened; never raises for network errors.

    Connects only to ``target.addresses`` (in order: the next one is tried only if
    connecting to the previous one failed, before anything was sent), with ``Host`` and the
    TLS server name taken from ``target.host``. ``headers`` (the signature, the content type
    if not JSON) are sent as given, after the defaults (``Content-Type: application/json``,
    ``User-Agent``); ``Host`` and ``Connection`` are always ours. ``timeout`` bounds the
    whole exchange, connecting to reading the last byte kept, even against a receiver that
    trickles bytes to defeat per-read timeouts. At most ``max_response_bytes`` of the
    response body are read; then the connection is closed. Redirects are not followed: a
    3xx is an unsuccessful attempt like any other non-2xx status.

    Cancelling the calling task still cancels the delivery (CancelledError propagates).
    """
    if not target.addresses:
        raise ValueError("the target has no address to connect to")
    progress = _Progress()
    error: str | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await _exchange(
                client, target, body, headers, started + timeout, max_response_bytes, progress
            )
    except _Unreachable:
        error = "could not connect: " + "; ".join(progress.connect_failures)
    except (TimeoutError, httpx.TimeoutException):
        # httpx's own timeouts (set to the time left) and the overall deadline say the same.
        if progress.status_code is None:
            error = f"timed out: no response within {timeout:g} s"
        else:
            error = f"timed out: the response body did not finish within {timeout:g} s"
        if progress.connect_failures:
            error += " (could not connect: " + "; ".join(progress.connect_failures) + ")"
    except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL, OSError) as exc:
        error = _describe(exc)
    return Attempt(
        status_code=progress.status_code,
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
        response_excerpt=progress.excerpt.decode("utf-8", "replace"),
    )


async def _exchange(
    client: httpx.AsyncClient,
    target: ResolvedTarget,
    body: bytes,
    headers: Mapping[str, str],
    deadline: float,
    max_response_bytes: int,
    progress: _Progress,
) -> None:
    request_headers = httpx.Headers(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # Compressed bodies would be inflated past the size bound before it could apply.
            "Accept-Encoding": "identity",
        }
    )
    request_headers.update(headers)  # header names compare without case, so one of each
    request_headers["Host"] = target.host_header
    request_headers["Connection"] = "close"
    # An IP literal is its own TLS name; a host name goes into SNI and the certificate check.
    extensions = {} if target.host_is_ip else {"sni_hostname": target.host}
    count = len(target.addresses)
    for index, address in enumerate(target.addresses):
        remaining = max(deadline - time.perf_counter(), 0.001)
        # Leave the later addresses a share of the time to connect in.
        connect_budget = remaining / (count - index)
        request = client.build_request(
            "POST",
            target.url_for(address),
            content=body,
            headers=request_headers,
            timeout=httpx.Timeout(remaining, connect=connect_budget),
            extensions=extensions,
        )
        # The client's cookie jar is keyed by address, so it could hold another endpoint's.
        request.headers.pop("Cookie", None)
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent: trying the next address cannot deliver twice.
            shown = f"[{address}]" if ":" in address else address
            progress.connect_failures.append(f"{shown}:{target.port} {_describe(exc)}")
            if index == count - 1:
                raise _Unreachable from exc
            continue
        try:
            progress.status_code = response.status_code
            if max_response_bytes > 0:
                async for chunk in response.aiter_raw():
                    room = max_response_bytes - len(progress.excerpt)
                    progress.excerpt += chunk[:room]
                    if len(chunk) >= room:
                        break
        finally:
            await response.aclose()
        return


def _describe(exc: BaseException) -> str:
    """A one-line account of a network failure for the attempt log."""
    if isinstance(exc, httpx.ConnectTimeout):
        kind = "timed out"
    elif isinstance(exc, httpx.ConnectError):
        kind = "failed"
    elif isinstance(exc, httpx.RemoteProtocolError):
        kind = "protocol error"
    elif isinstance(exc, httpx.ReadError | httpx.WriteError):
        kind = "connection broken"
    else:
        kind = type(exc).__name__
    detail = str(exc).strip()
    return f"{kind} ({detail})" if detail else kind
