"""One structured (JSON) line per request on the ``overplane.access`` logger.

The line holds method, path, status, duration, request id and account id; never a key, a body
or the query string (which could carry personal data).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Protocol

import msgspec

logger = logging.getLogger("overplane.access")
_encode = msgspec.json.Encoder().encode


class AccessLog(Protocol):
    """Records one request."""

    def __call__(
        self,
        *,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        request_id: str,
        account_id: str | None,
    ) -> None: ...


def _write(
    *,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    request_id: str,
    account_id: str | None,
) -> None:
    if logger.isEnabledFor(logging.INFO):
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": request_id,
            "account_id": account_id,
        }
        logger.info(_encode(line).decode())


def _discard(**_: object) -> None:
    """The access log when it is switched off."""


def configure(enabled: bool) -> AccessLog:
    """The access-log writer: JSON lines on standard error, or nothing when disabled."""
    if not enabled:
        return _discard
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return _write
