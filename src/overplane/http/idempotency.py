"""Idempotency keys, with Stripe's semantics, stored with the write they protect.

A write (``POST``, ``PATCH``, ``DELETE``) sent with ``Idempotency-Key: <up to 255 chars>``
runs inside one database transaction that also records its response. A later request with the
same key (for the same account and mode) and the same method, path and body gets that response
back byte for byte, with ``Idempotent-Replayed: true``, however the object has changed since;
a different method, path or body is ``422 idempotency_key_reused``; a request that arrives while
the first is still running is ``409 idempotency_key_in_use`` and never runs twice.

Responses caused by the request (2xx, 4xx) are recorded; a 5xx rolls the transaction back, so
nothing is recorded and the client may retry. Keys are honoured for
``OVERPLANE_IDEMPOTENCY_TTL_HOURS`` (24 by default) and swept after that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from overplane.http.errors import (
    APIError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ParameterInvalid,
    error_response,
)
from overplane.http.messages import Reply
from overplane.storage.database import Database, Executor
from overplane.storage.objects import Scope, now_ms

HEADER = b"idempotency-key"
REPLAYED = "idempotent-replayed"
MAX_KEY_LENGTH = 255
METHODS = frozenset({"POST", "PATCH", "DELETE"})
#: Response headers worth replaying; Content-Type and Content-Length are written with every
#: reply, Date is the replay's own.
_KEPT_HEADERS = frozenset({"location", "etag", "allow", "www-authenticate", "request-id"})

_FIND = (
    "SELECT method, path, body_hash, status, headers, body FROM idempotency_keys "
    "WHERE account_id = ? AND livemode = ? AND key = ? AND created_at > ?"
)
_SAVE = (
    "INSERT INTO idempotency_keys "
    "(account_id, livemode, key, method, path, body_hash, status, headers, body, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (account_id, livemode, key) DO UPDATE SET method = excluded.method, "
    "path = excluded.path, body_hash = excluded.body_hash, status = excluded.status, "
    "headers = excluded.headers, body = excluded.body, created_at = excluded.created_at"
)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """What identifies a request for its key: who sent it, and its method, path and body."""

    scope: Scope
    key: str
    method: str
    path: str
    body_hash: str

    @classmethod
    def of(cls, scope: Scope, key: str, method: str, path: str, body: bytes) -> IdempotentRequest:
        """Check the key's length and fingerprint the body."""
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.strip():
            raise ParameterInvalid(
                f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters",
                param="Idempotency-Key",
            )
        return cls(scope, key, method, path, hashlib.sha256(body).hexdigest())


def _mismatch(request: IdempotentRequest, method: str, path: str, body_hash: str) -> str | None:
    if method != request.method or path != request.path:
        return f"This Idempotency-Key was first used for {method} {path}, not {request.method} {request.path}."
    if body_hash != request.body_hash:
        return "This Idempotency-Key was first used with a different request body."
    return None


def _replay(status: int, headers_json: str, body: bytes) -> Reply:
    # Compared in lower case, whatever spelling an earlier version stored.
    headers = tuple(
        (name.lower(), value)
        for name, value in json.loads(headers_json)
        if name.lower() in _KEPT_HEADERS
    )
    return Reply(status, bytes(body), (*headers, (REPLAYED, "true")))


def _stored_headers(reply: Reply, request_id: str) -> str:
    kept = [(name, value) for name, value in reply.headers if name in _KEPT_HEADERS]
    # The replay carries the first request's id, which its body (if an error) repeats.
    return json.dumps([*kept, ("request-id", request_id)])


async def run_idempotently(
    db: Database,
    request: IdempotentRequest,
    request_id: str,
    ttl_ms: int,
    execute: Callable[[Executor], Awaitable[Reply]],
) -> Reply:
    """Run ``execute`` at most once for the request's key; replay its response afterwards."""
    scope = request.scope
    async with db.transaction() as transaction:
        lock = f"idempotency:{scope.account_id}:{int(scope.livemode)}:{request.key}"
        if not await transaction.try_lock(lock):
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                param="Idempotency-Key",
            )
        found = await transaction.fetch_one(
            _FIND, (scope.account_id, scope.livemode, request.key, now_ms() - ttl_ms)
        )
        if found is not None:
            method, path, body_hash, status, headers_json, body = found
            problem = _mismatch(request, method, path, body_hash)
            if problem:
                raise IdempotencyKeyReused(problem, param="Idempotency-Key")
            return _replay(status, headers_json, body)
        try:
            reply = await execute(transaction)
        except APIError as error:
            if error.status >= 500:
                raise
            reply = error_response(error, request_id)
        await transaction.execute(
            _SAVE,
            (
                scope.account_id,
                scope.livemode,
                request.key,
                request.method,
                request.path,
                request.body_hash,
                reply.status,
                _stored_headers(reply, request_id),
                reply.body,
                now_ms(),
            ),
        )
        return reply


async def sweep(db: Executor, ttl_ms: int) -> None:
    """Forget keys older than the time-to-live (lookups already ignore them)."""
    await db.execute("DELETE FROM idempotency_keys WHERE created_at <= ?", (now_ms() - ttl_ms,))
