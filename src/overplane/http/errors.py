"""The contract's error responses: every error of :mod:`overplane.errors`, rendered here.

Handlers raise; :func:`error_body` turns an error into the contract's JSON. Nothing else in
the project writes an error response, so every layer's errors look the same: the errors the
HTTP server itself gives before a request reaches the application (malformed HTTP, slow or
oversized headers, too many connections) are rendered by :func:`error_body` too
(``http/protocol.py``). The classes are
re-exported so that ``from overplane.http.errors import ParameterInvalid`` keeps working.
"""

from __future__ import annotations

import msgspec

from overplane.errors import (
    ERROR_CODES,
    APIError,
    AuthenticationFailed,
    BodyInvalid,
    BodyTooLarge,
    ContentTypeUnsupported,
    HeadersTooLarge,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    ParameterInvalid,
    ParameterMissing,
    ParameterUnknown,
    PreconditionFailed,
    RateLimited,
    RequestMalformed,
    RequestTimeout,
    ResourceMissing,
    RouteMissing,
    Unavailable,
)
from overplane.http.messages import Reply

__all__ = [
    "ERROR_CODES",
    "APIError",
    "AuthenticationFailed",
    "BodyInvalid",
    "BodyTooLarge",
    "ContentTypeUnsupported",
    "HeadersTooLarge",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InternalError",
    "InvalidRequest",
    "MethodNotAllowed",
    "ParameterInvalid",
    "ParameterMissing",
    "ParameterUnknown",
    "PreconditionFailed",
    "RateLimited",
    "RequestMalformed",
    "RequestTimeout",
    "ResourceMissing",
    "RouteMissing",
    "Unavailable",
    "error_body",
    "error_response",
]


def error_response(error: APIError, request_id: str) -> Reply:
    """The response for ``error``: the only place errors render."""
    headers = tuple((name.lower(), value) for name, value in error.headers.items())
    return Reply(error.status, error_body(error, request_id), headers)


def error_body(error: APIError, request_id: str) -> bytes:
    """The JSON body of an error response, as the contract shapes it."""
    payload: dict[str, str] = {"type": error.type, "code": error.code, "message": error.message}
    if error.param is not None:
        payload["param"] = error.param
    payload["request_id"] = request_id
    return msgspec.json.encode({"error": payload})
