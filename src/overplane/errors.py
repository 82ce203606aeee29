"""Every error the API can return, as one exception hierarchy rendered in one place.

::

    APIError                        any error response; carries status, type, code, param
    ├── InvalidRequest              400 invalid_request_error
    │   ├── ParameterMissing        400 parameter_missing
    │   ├── ParameterUnknown        400 parameter_unknown
    │   ├── ParameterInvalid        400 parameter_invalid
    │   ├── BodyInvalid             400 body_invalid
    │   └── RequestMalformed        400 request_malformed (not HTTP/1.1; http/protocol.py)
    ├── AuthenticationFailed        401 authentication_error (api_key_missing, api_key_invalid)
    ├── ResourceMissing             404 resource_missing
    ├── RouteMissing                404 route_missing
    ├── MethodNotAllowed            405 method_not_allowed, with Allow
    ├── RequestTimeout              408 request_timeout (http/protocol.py)
    ├── IdempotencyKeyInUse         409 idempotency_error idempotency_key_in_use
    ├── PreconditionFailed          412 precondition_failed
    ├── BodyTooLarge                413 body_too_large
    ├── ContentTypeUnsupported      415 content_type_unsupported
    ├── IdempotencyKeyReused        422 idempotency_error idempotency_key_reused
    ├── RateLimited                 429 rate_limit_error rate_limited, with Retry-After
    ├── HeadersTooLarge             431 headers_too_large (http/protocol.py)
    ├── Unavailable                 503 api_error unavailable, with Retry-After
    └── InternalError               500 api_error internal_error

Handlers raise; ``http/errors.py`` turns an error into the contract's JSON, and nothing else
in the project writes an error response, so every layer's errors look the same. The classes
live here, below every layer, because the pages (``web/``) and the validation the API and the
dashboard share (``validation/``) raise them too, and neither may import ``http/``.
"""

from __future__ import annotations


class APIError(Exception):
    """An error response: HTTP status, error type and code, a message, maybe a parameter."""

    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        #: The RateLimit-* headers of the bucket the request took from, if any (set by
        #: the application, which alone knows the limits).
        self.limit_headers: tuple[tuple[str, str], ...] = ()
        if code is not None:
            self.code = code


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "parameter_invalid"


class ParameterMissing(InvalidRequest):
    code = "parameter_missing"


class ParameterUnknown(InvalidRequest):
    code = "parameter_unknown"


class ParameterInvalid(InvalidRequest):
    code = "parameter_invalid"


class BodyInvalid(InvalidRequest):
    code = "body_invalid"


class RequestMalformed(InvalidRequest):
    """Bytes that are not an HTTP/1.1 request (answered by the HTTP server, not a handler)."""

    code = "request_malformed"


class AuthenticationFailed(APIError):
    status = 401
    type = "authentication_error"
    code = "api_key_invalid"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class ResourceMissing(APIError):
    status = 404
    type = "invalid_request_error"
    code = "resource_missing"


class RouteMissing(APIError):
    status = 404
    type = "invalid_request_error"
    code = "route_missing"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            f"{method} is not allowed here; allowed: {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class RequestTimeout(APIError):
    """The request's headers or body did not arrive in time."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class HeadersTooLarge(APIError):
    """The request line and headers are longer, or more numerous, than the server accepts."""

    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class IdempotencyKeyInUse(APIError):
    status = 409
    type = "idempotency_error"
    code = "idempotency_key_in_use"


class PreconditionFailed(APIError):
    status = 412
    type = "invalid_request_error"
    code = "precondition_failed"


class IdempotencyKeyReused(APIError):
    status = 422
    type = "idempotency_error"
    code = "idempotency_key_reused"


class BodyTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "body_too_large"


class ContentTypeUnsupported(APIError):
    status = 415
    type = "invalid_request_error"
    code = "content_type_unsupported"


class RateLimited(APIError):
    """Over a key's budget, or too many failed authentications from one address."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class Unavailable(APIError):
    status = 503
    type = "api_error"
    code = "unavailable"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "The service is temporarily unavailable; retry the request shortly.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class InternalError(APIError):
    """An unexpected failure; its message never carries a stack trace or SQL."""

    def __init__(self) -> None:
        super().__init__("An internal error occurred; the request id identifies it in our logs.")


#: Every (status, type, code) the API can return; docs/errors.md must list each code.
ERROR_CODES: tuple[tuple[int, str, str], ...] = (
    (400, "invalid_request_error", "parameter_missing"),
    (400, "invalid_request_error", "parameter_unknown"),
    (400, "invalid_request_error", "parameter_invalid"),
    (400, "invalid_request_error", "body_invalid"),
    (400, "invalid_request_error", "request_malformed"),
    (401, "authentication_error", "api_key_missing"),
    (401, "authentication_error", "api_key_invalid"),
    (404, "invalid_request_error", "resource_missing"),
    (404, "invalid_request_error", "route_missing"),
    (405, "invalid_request_error", "method_not_allowed"),
    (408, "invalid_request_error", "request_timeout"),
    (409, "idempotency_error", "idempotency_key_in_use"),
    (412, "invalid_request_error", "precondition_failed"),
    (413, "invalid_request_error", "body_too_large"),
    (415, "invalid_request_error", "content_type_unsupported"),
    (422, "idempotency_error", "idempotency_key_reused"),
    (429, "rate_limit_error", "rate_limited"),
    (431, "invalid_request_error", "headers_too_large"),
    (500, "api_error", "internal_error"),
    (503, "api_error", "unavailable"),
)
