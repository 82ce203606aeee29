"""Signing webhook deliveries, and checking a delivery's signature on the receiving side.

A delivery carries one header::

    Overplane-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``t`` is the sending time in Unix seconds and each ``v1`` is the lowercase hex
HMAC-SHA256 of ``"<t>.<raw body>"`` under one of the endpoint's signing secrets (the whole
``whsec_…`` string, UTF-8 encoded). While a secret is being rotated the header carries one
``v1`` per live secret, so a receiver holding either secret accepts it.

This module imports only the standard library: receivers use it (through
``overplane.webhooks.verify``) without installing any of the server's dependencies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "SignatureVerificationError",
    "sign",
    "verify",
]

#: The name of the request header that carries the signature.
SIGNATURE_HEADER = "Overplane-Signature"
#: How far, in seconds, a delivery's timestamp may be from the receiver's clock by default.
DEFAULT_TOLERANCE = 300

# The scheme names a signature. Anything else in the header (a future "v2", say) is
# ignored, so the server can add a scheme without breaking receivers that check v1.
_SCHEME = "v1"
# Ten digits reach the year 2286; the bound keeps int() far from its digit limit, which
# raises ValueError rather than anything a caller expects from a malformed header.
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


class SignatureVerificationError(Exception):
    """The signature header is missing, malformed, stale, or matches no signing secret.

    The message says which; it is safe to log (it never contains the secret).
    """


def _digest(secret: str, timestamp: int, payload: bytes) -> str:
    signed = b"%d." % timestamp + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``Overplane-Signature`` header value for ``payload`` sent at ``timestamp``.

    ``secrets`` are the endpoint's live signing secrets, newest first: one ``v1`` entry is
    written per secret, in that order.
    """
    # A lone string is a Sequence[str] too; signing with each of its characters would
    # produce a header no receiver can verify, so refuse it loudly.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if any(not secret for secret in secrets):
        raise ValueError("a signing secret is empty")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be a non-negative int of Unix seconds, not {timestamp!r}")
    entries = [f"t={timestamp}"]
    entries += [f"{_SCHEME}={_digest(secret, timestamp, payload)}" for secret in secrets]
    return ",".join(entries)


def _parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and the v1 signatures of a header, or SignatureVerificationError."""
    timestamp: int | None = None
    signatures: list[str] = []
    for entry in header.split(","):
        key, equals, value = entry.strip().partition("=")
        if not equals or not key:
            raise SignatureVerificationError(
                f"malformed {SIGNATURE_HEADER} header: expected t=<timestamp>,v1=<signature>"
            )
        if key == "t":
            if timestamp is not None:
                raise SignatureVerificationError(
                    f"malformed {SIGNATURE_HEADER} header: more than one timestamp"
                )
            if not _TIMESTAMP.fullmatch(value):
                raise SignatureVerificationError(
                    f"malformed {SIGNATURE_HEADER} header: the timestamp is not Unix seconds"
                )
            timestamp = int(value)
        elif key == _SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureVerificationError(f"malformed {SIGNATURE_HEADER} header: no timestamp")
    if not signatures:
        raise SignatureVerificationError(f"no {_SCHEME} signature in the {SIGNATURE_HEADER} header")
    return timestamp, signatures


def verify(
    payload: bytes | str,
    header: str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that ``header`` signs ``payload`` with ``secret``, recently; raise if not.

    ``payload`` must be the raw request body exactly as received (not JSON decoded and
    encoded again: any change of whitespace or key order breaks the signature). ``header``
    is the ``Overplane-Signature`` value, or None when the request had none. The check
    passes when any of the header's ``v1`` signatures matches (comparisons take constant
    time), and the header's timestamp is within ``tolerance`` seconds of ``now`` (default:
    the current time) in either direction, so an old delivery cannot be replayed later.

    Raises SignatureVerificationError, and nothing else, whatever the header holds.
    """
    if not secret:
        raise ValueError("the secret to verify with is empty")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    if header is None:
        raise SignatureVerificationError(f"no {SIGNATURE_HEADER} header")
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    timestamp, signatures = _parse(header)

    # The signature is checked before the time, so "outside the tolerance" always means a
    # genuine delivery that is old (a replay, or a clock that is off), never a forgery.
    expected = _digest(secret, timestamp, payload).encode("ascii")
    matched = False
    for candidate in signatures:
        # compare_digest on str refuses non-ASCII; a value of the wrong shape cannot
        # match anyway, so it is skipped (still comparing the others in constant time).
        if _HEX_SHA256.fullmatch(candidate) and hmac.compare_digest(
            expected, candidate.encode("ascii")
        ):
            matched = True
    if not matched:
        raise SignatureVerificationError(
            f"no {_SCHEME} signature in the {SIGNATURE_HEADER} header matches the payload "
            "and secret"
        )

    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise SignatureVerificationError(
            f"the {SIGNATURE_HEADER} timestamp is {when}, outside the tolerance of "
            f"{tolerance} s (a replayed delivery, or a clock that is off)"
        )
