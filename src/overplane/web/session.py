"""Who is signed in to the dashboard, and the checks every dashboard write passes.

**Sessions.** Signing in sends a secret key once, in a POST body; the server checks it like
the API does (``auth/keys.py``), opens a row in ``dashboard_sessions`` (the SHA-256 of a new
random token, the key's *id*, the tenant) and gives the browser the token in a cookie that is
``HttpOnly`` (no script can read it), ``SameSite=Strict`` (no other site's page can make the
browser send it), ``Path=/dashboard`` and ``Secure`` when the request came over HTTPS. The key
itself is never stored, never put in a URL or a page, and never reaches JavaScript. Revoking
the key (``overplane keys revoke``) or signing out ends the session at once; it also expires.

**CSRF.** Every write is a POST carrying a ``csrf`` form field; for a signed-in page it is
the SHA-256 of ``"csrf:" + the session token``, so only a page this server rendered for this
session knows it (another site can neither read the HttpOnly cookie nor our pages), and it is
compared in constant time. The sign-in form, before any session, uses a double-submit token:
a random value in its own SameSite=Strict cookie that the form must repeat. Writes whose
``Origin`` header names another origin are refused before anything else, and SameSite=Strict
keeps the session cookie off cross-site requests anyway: three fences, each enough alone.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from overplane.storage.ids import new_random_token

SESSION_COOKIE = "overplane_session"
SIGN_IN_COOKIE = "overplane_sign_in"
COOKIE_PATH = "/dashboard"
#: A form body larger than this is refused: the largest field (customer_details, 65,535
#: characters) percent-encoded as 4-byte UTF-8 still fits.
MAX_FORM_BYTES = 1_048_576


class FormRefused(Exception):
    """A form the dashboard will not act on: too large, not a form, not UTF-8, or failing
    the CSRF checks. Rendered as a 400 or 403 page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def csrf_token(session_token: str) -> str:
    """The CSRF token of the pages rendered for a session."""
    return hashlib.sha256(f"csrf:{session_token}".encode()).hexdigest()


def same_token(sent: str | None, expected: str) -> bool:
    """Whether the form's token is the expected one (constant-time)."""
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


def is_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or as the ASGI server reports
    from a trusted proxy's headers)."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Set one of the dashboard's cookies: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Remove one of the dashboard's cookies."""
    response.delete_cookie(
        name, path=COOKIE_PATH, secure=is_https(request), httponly=True, samesite="strict"
    )


def new_sign_in_token() -> str:
    """A random double-submit token for the sign-in form."""
    return new_random_token(24)


def check_origin(request: Request) -> None:
    """Refuse a write that a page of another origin sent (browsers send Origin on POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin != expected:
        raise FormRefused("This form was sent from another site; it was not acted on.", 403)


async def read_form(request: Request) -> dict[str, str]:
    """The POSTed ``application/x-www-form-urlencoded`` form (the last value of a repeated
    name wins), after the Origin check; FormRefused for anything else."""
    check_origin(request)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise FormRefused("Send this form from the dashboard's own page.", 415)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise FormRefused("The form is too large.", 413)
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("ascii")
        # Percent-decoding as UTF-8, strictly: malformed bytes are an error, never U+FFFD.
        pairs = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=200, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise FormRefused("The form is not valid UTF-8.") from None
    return dict(pairs)
