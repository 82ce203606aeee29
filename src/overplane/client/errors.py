"""What the client raises: one exception per kind of failure, mirroring the API's error object.

::

    OverplaneError                  anything the client raises on purpose
    ├── APIConnectionError          no response: refused, dropped, timed out (after retries)
    └── APIError                    an error response: status, type, code, message, param,
        │                           request_id, headers and the raw body
        ├── AuthenticationError     401 (api_key_missing, api_key_invalid)
        ├── InvalidRequestError     400 and any other 4xx not below (405, 413, 415, 422, …)
        ├── NotFoundError           404 (resource_missing, route_missing)
        ├── ConflictError           409 not about an idempotency key
        ├── PreconditionFailedError 412 (a stale If-Match: nothing was changed)
        ├── IdempotencyError        idempotency_error: 409 idempotency_key_in_use,
        │                           422 idempotency_key_reused
        └── RateLimitError          429 (rate_limited), with retry_after

A 5xx (or anything else) is an :class:`APIError` itself. The class is chosen by status first
and refined by the body's ``type``, so a code the server adds later still raises the class of
its status: match on ``code`` for detail, catch classes for handling.

Imports nothing of the server: applications that only call the API use this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "ConflictError",
    "IdempotencyError",
    "InvalidRequestError",
    "NotFoundError",
    "OverplaneError",
    "PreconditionFailedError",
    "RateLimitError",
    "Response",
    "error_from_response",
]


class Response(Protocol):
    """What the client reads of an HTTP response: an ``httpx.Response``, or the lean one of
    :mod:`overplane.client.bulk` (its headers a dict with lower-case names)."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    @property
    def is_success(self) -> bool: ...

    def json(self) -> Any: ...


class OverplaneError(Exception):
    """The base of every error the client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(OverplaneError):
    """The API could not be reached, or the connection failed before a response arrived
    (after the client's retries); the underlying httpx error is ``__cause__``."""


class APIError(OverplaneError):
    """An error response of the API: the error object's fields, with the raw response."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        json_body: Any = None,
    ) -> None:
        super().__init__(message)
        #: The HTTP status code.
        self.status = status
        #: The error's ``type`` (``invalid_request_error``, …), None if the body had none.
        self.type = type
        #: The stable, machine-readable ``code`` (``parameter_invalid``, …).
        self.code = code
        #: The parameter or field at fault, when there is one.
        self.param = param
        #: The ``Request-Id`` of the failed request (quote it when reporting a problem).
        self.request_id = request_id
        #: The response's headers (lower-case names).
        self.headers: dict[str, str] = dict(headers or {})
        #: The response body as received, and decoded when it was JSON.
        self.body = body
        self.json_body = json_body

    def __str__(self) -> str:
        parts = [f"{self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.message}"
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id:
            text += f" [{self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, param={self.param!r}, request_id={self.request_id!r})"
        )


class AuthenticationError(APIError):
    """401: no key, or a key that is unknown, malformed or revoked."""


class InvalidRequestError(APIError):
    """400 (and any 4xx without a class of its own): ``param`` names what is at fault."""


class NotFoundError(APIError):
    """404: no object with that id for this key's account and mode (or no such route)."""


class ConflictError(APIError):
    """409 for a reason other than an idempotency key."""


class PreconditionFailedError(APIError):
    """412: ``If-Match`` names a version the object no longer has; nothing was changed."""


class IdempotencyError(APIError):
    """The ``Idempotency-Key``: still in use by a running request (409, retried by the
    client), or first used with another method, path or body (422)."""


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` is the server's suggested wait in seconds."""

    @property
    def retry_after(self) -> float | None:
        """The ``Retry-After`` header in seconds, if the server sent one."""
        return retry_after_seconds(self.headers)


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    429: RateLimitError,
}


def error_class(status: int, error_type: str | None, code: str | None) -> type[APIError]:
    """The class for an error response: by status, refined by ``type`` (so an unknown code
    still gets its status's class)."""
    if error_type == "idempotency_error" or (code or "").startswith("idempotency_key"):
        return IdempotencyError
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    if 400 <= status < 500:
        return InvalidRequestError
    return APIError


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the server asks to wait: ``Retry-After`` (seconds), else the reset of the
    IETF ``RateLimit`` headers (``RateLimit-Reset: 5``, or ``RateLimit: …;t=5``/``reset=5``);
    None when the server said nothing usable (an HTTP date is not honoured: clocks differ)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    candidates = [lowered.get("retry-after"), lowered.get("ratelimit-reset")]
    combined = lowered.get("ratelimit")
    if combined:
        for item in combined.replace(",", ";").split(";"):
            name, _, value = item.strip().partition("=")
            if name in ("t", "reset"):
                candidates.append(value)
    for raw in candidates:
        if raw is None:
            continue
        try:
            seconds = float(raw.strip())
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def error_from_response(response: Response) -> APIError:
    """The exception for an error response, from its error object (or, when the body is not
    the API's JSON, e.g. a proxy's page, from its status alone)."""
    body = response.content
    json_body: Any = None
    error: Mapping[str, Any] = {}
    with contextlib.suppress(ValueError):  # not JSON: a proxy's page, say
        json_body = response.json()
    if isinstance(json_body, dict) and isinstance(json_body.get("error"), dict):
        error = json_body["error"]

    def text(key: str) -> str | None:
        value = error.get(key)
        return value if isinstance(value, str) else None

    status = response.status_code
    message = text("message") or f"HTTP {status} {response.reason_phrase}".strip()
    cls = error_class(status, text("type"), text("code"))
    return cls(
        message,
        status=status,
        type=text("type"),
        code=text("code"),
        param=text("param"),
        request_id=text("request_id") or response.headers.get("request-id"),
        headers=dict(response.headers),
        body=body,
        json_body=json_body,
    )
