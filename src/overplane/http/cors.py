"""CORS: which browser origins may call the API, and the headers that tell them so.

Off unless ``OVERPLANE_CORS_ORIGINS`` lists origins. A preflight (``OPTIONS`` with ``Origin``
and ``Access-Control-Request-Method``) from a listed origin is answered here, without a key
(browsers never send credentials with a preflight); every other response to a listed origin
gets ``Access-Control-Allow-Origin`` and the list of headers its script may read. An origin
not listed gets no CORS header at all, so the browser keeps the response from its script.
No cookies are involved (the API authenticates by bearer key), so
``Access-Control-Allow-Credentials`` is never sent.
"""

from __future__ import annotations

from starlette.types import Scope

#: Response headers a script of an allowed origin may read, besides the CORS-safelisted ones.
EXPOSED = (
    "Request-Id, ETag, Location, Idempotent-Replayed, Retry-After, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
#: Methods and request headers a preflight may ask for: what the API reads.
ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match"
#: How long a browser may remember a preflight's answer (Chromium caps it at 2 hours).
MAX_AGE_SECONDS = 600


class Cors:
    """The CORS policy for a list of origins (``*``: any origin)."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(origins) - {"*"}
        self.enabled = bool(origins)

    def allowed_origin(self, scope: Scope) -> str | None:
        """The request's ``Origin`` if it is allowed, else None (also when CORS is off)."""
        if not self.enabled:
            return None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin: str = value.decode("latin-1").strip().lower()
                if self.any_origin or origin in self.origins:
                    return origin
                return None
        return None

    @staticmethod
    def is_preflight(scope: Scope) -> bool:
        """An ``OPTIONS`` request carrying ``Access-Control-Request-Method``."""
        return scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope["headers"]
        )

    def response_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """Headers for an ordinary response to an allowed ``origin``."""
        allow = b"*" if self.any_origin else origin.encode("latin-1")
        return [
            (b"access-control-allow-origin", allow),
            (b"access-control-expose-headers", EXPOSED.encode()),
            (b"vary", b"Origin"),
        ]

    def preflight_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """Headers for the answer to a preflight from an allowed ``origin``."""
        allow = b"*" if self.any_origin else origin.encode("latin-1")
        return [
            (b"access-control-allow-origin", allow),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
