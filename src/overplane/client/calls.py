"""One API call, from the arguments to the parsed result, with its retries: written once for
both clients.

A :class:`Call` is everything a request is (method, path, query, body bytes, headers, how to
read the answer), built once, so that every retry sends exactly the same bytes and the same
``Idempotency-Key`` (the server compares the body byte for byte). :func:`exchange` is the whole
conversation as a generator that does no I/O: it yields the request to send or a
:class:`Wait`, is sent back the response or the transport error, and returns the result or
raises the typed error. :class:`~overplane.client.Client` drives it with blocking sends and
``time.sleep``, :class:`~overplane.client.AsyncClient` with ``await``, and the bulk creates
of :mod:`overplane.client.bulk` with their own request bytes; the retry policy, the error
mapping and the parsing are the same code for all.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import httpx

from overplane.client.errors import (
    APIConnectionError,
    Response,
    error_from_response,
    retry_after_seconds,
)

R = TypeVar("R")
#: What is sent: an ``httpx.Request``, or the request bytes of a bulk create.
Q = TypeVar("Q")
#: Methods that change something: each is sent with an Idempotency-Key, which makes retrying
#: it safe (the server replays the first response instead of running it again).
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"


class NotGiven:
    """The default of optional arguments: "not sent", as opposed to None ("send null")."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN = NotGiven()


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One API request, ready to be sent (and sent again, identically), and how to read its
    successful answer's JSON."""

    method: str
    path: str
    parse: Callable[[Any], R]
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def idempotency_key(self) -> str | None:
        """The key this call is sent with (writes always have one)."""
        return dict(self.headers).get(IDEMPOTENCY_HEADER)


def new_call(
    method: str,
    path: str,
    parse: Callable[[Any], R],
    *,
    params: Iterable[tuple[str, str]] = (),
    payload: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    if_match: str | None = None,
) -> Call[R]:
    """A call; a write gets an ``Idempotency-Key`` (the caller's, or a new UUID4) that stays
    the same across its retries, so that no retry can run it twice."""
    headers: list[tuple[str, str]] = []
    body = None
    if payload is not None:
        # Encoded once: every retry sends these same bytes.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers.append(("Content-Type", "application/json"))
    if method in WRITE_METHODS:
        headers.append((IDEMPOTENCY_HEADER, idempotency_key or str(uuid.uuid4())))
    if if_match is not None:
        headers.append(("If-Match", if_match))
    return Call(method, path, parse, tuple(params), body, tuple(headers))


def given(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` without the arguments left at :data:`NOT_GIVEN`."""
    return {name: value for name, value in fields.items() if value is not NOT_GIVEN}


# --- query parameters -------------------------------------------------------------------------


def query_value(name: str, value: object) -> str:
    """A filter value as the query string carries it: strings as they are, booleans as
    ``true``/``false``, datetimes as RFC 3339 (an aware one; a naive one is refused rather
    than guessed), numbers in decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}: give a timezone-aware datetime (e.g. tzinfo=UTC)")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(f"{name}: a filter value must be a string, bool or datetime, not {value!r}")


def list_params(
    limit: int | None,
    offset: int | None,
    starting_after: str | None,
    ending_before: str | None,
    filters: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """The query of a list: the page parameters, then each filter; a mapping is an operator
    filter, ``scheduled_time={"gte": t}`` → ``scheduled_time[gte]=t``; None is left out."""
    params: list[tuple[str, str]] = []
    page = {
        "limit": limit,
        "offset": offset,
        "starting_after": starting_after,
        "ending_before": ending_before,
    }
    for name, value in page.items():
        if value is not None:
            params.append((name, query_value(name, value)))
    for name, value in filters.items():
        if value is None or value is NOT_GIVEN:
            continue
        if isinstance(value, Mapping):
            for operator, bound in value.items():
                if bound is not None:
                    key = f"{name}[{operator}]"
                    params.append((key, query_value(key, bound)))
        else:
            params.append((name, query_value(name, value)))
    return params


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before sending a call again (docs/client.md, "Retries").

    Retried: transport failures (refused, reset, dropped, timed out), 409
    ``idempotency_key_in_use``, 429 and 5xx; never another 4xx, which would fail again the
    same way. Every call can be retried safely: reads change nothing, and writes carry an
    Idempotency-Key.

    A 429 is not a failure but the server pacing its callers: it is waited out as often as it
    comes (while retries are on), as long as the server asks, until the call has waited
    ``max_retry_after`` seconds for 429s in all; it does not use up ``max_retries``. Measured:
    eight threads sharing one key over a bucket of 10 refilling 20 a second, three attempts
    were not always enough (a call of 120 failed in two runs of five).
    """

    max_retries: int = 2
    #: The first backoff; each retry doubles it, up to max_delay, then jitter takes 0-50 %
    #: off so that clients failed together do not retry together.
    initial_delay: float = 0.5
    max_delay: float = 8.0
    #: The longest server-requested wait (Retry-After, RateLimit reset) the client sleeps
    #: through; a longer one is raised at once, for the caller to decide.
    max_retry_after: float = 60.0

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first), with jitter."""
        base: float = min(self.max_delay, self.initial_delay * 2**retry)
        return base * (1 - random.random() / 2)

    def wait_for_rate_limit(self, waited: float, response: Response) -> float | None:
        """Seconds to wait after a 429, having waited ``waited`` for 429s already, or None
        to raise it (retries off, or more waiting than ``max_retry_after`` in all)."""
        if self.max_retries <= 0:
            return None
        asked = retry_after_seconds(response.headers)
        wait = self.initial_delay if asked is None else asked
        if waited + wait > self.max_retry_after:
            return None
        return wait

    def wait_after(self, retry: int, response: Response | None) -> float | None:
        """Seconds to wait before retry ``retry`` after ``response`` (None: a transport error),
        or None when the call must not be retried."""
        if retry >= self.max_retries:
            return None
        if response is None:
            return self.backoff(retry)
        status = response.status_code
        retryable = status == 429 or status >= 500
        if status == 409:
            retryable = _error_code(response) == "idempotency_key_in_use"
        if not retryable:
            return None
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return self.backoff(retry)
        if asked > self.max_retry_after:
            return None
        return asked


def _error_code(response: Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


#: Transport errors worth another try; the others (a malformed URL, a request httpx cannot
#: even encode) would fail the same way again.
_NOT_RETRIED = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep this long, then send the request again."""

    seconds: float


#: What :func:`exchange` is sent back: the response, or the transport error instead.
Outcome = Response | httpx.TransportError


def exchange(call: Call[R], request: Q, policy: RetryPolicy) -> Generator[Q | Wait, Outcome, R]:
    """The conversation for one call: yields ``request`` (send it, send back the outcome) and
    :class:`Wait` (sleep, send back None); returns the parsed result or raises the typed
    error (:class:`APIConnectionError` when no response came)."""
    retry = 0
    rate_limited_for = 0.0
    while True:
        outcome = yield request
        if isinstance(outcome, httpx.TransportError):
            wait = None if isinstance(outcome, _NOT_RETRIED) else policy.wait_after(retry, None)
            if wait is None:
                raise APIConnectionError(
                    f"{call.method} {call.path}: could not get a response "
                    f"({type(outcome).__name__}: {outcome or 'no detail'})"
                ) from outcome
        elif outcome.is_success:
            return call.parse(outcome.json() if outcome.content else None)
        elif outcome.status_code == 429:
            wait = policy.wait_for_rate_limit(rate_limited_for, outcome)
            if wait is None:
                raise error_from_response(outcome)
            rate_limited_for += wait
            yield Wait(wait)
            continue  # paced by the server: not one of max_retries
        else:
            wait = policy.wait_after(retry, outcome)
            if wait is None:
                raise error_from_response(outcome)
        yield Wait(wait)
        retry += 1


__all__ = [
    "NOT_GIVEN",
    "Call",
    "NotGiven",
    "Outcome",
    "Response",
    "RetryPolicy",
    "Wait",
    "exchange",
    "given",
    "list_params",
    "new_call",
]
