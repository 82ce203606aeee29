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

from overplane.clock import now_ms
from overplane.http.errors import (
    APIError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ParameterInvalid,
    error_response,
)
from overplane.http.messages import Reply
from overplane.storage import idempotency as records
from overplane.storage.database import Database, Executor
from overplane.storage.idempotency import IdempotencyRecord
from overplane.storage.tenant import Tenant

HEADER = b"idempotency-key"
REPLAYED = "idempotent-replayed"
MAX_KEY_LENGTH = 255
METHODS = frozenset({"POST", "PATCH", "DELETE"})
#: Response headers worth replaying; Content-Type and Content-Length are written with every
#: reply, Date is the replay's own.
_KEPT_HEADERS = frozenset({"location", "etag", "allow", "www-authenticate", "request-id"})


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """What identifies a request for its key: who sent it, and its method, path and body."""

    tenant: Tenant
    key: str
    method: str
    path: str
    body_hash: str

    @classmethod
    def of(cls, tenant: Tenant, key: str, method: str, path: str, body: bytes) -> IdempotentRequest:
        """Check the key's length and fingerprint the body."""
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.strip():
            raise ParameterInvalid(
                f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters",
                param="Idempotency-Key",
            )
        return cls(tenant, key, method, path, hashlib.sha256(body).hexdigest())


def _mismatch(request: IdempotentRequest, first: IdempotencyRecord) -> str | None:
    if first.method != request.method or first.path != request.path:
        return (
            f"This Idempotency-Key was first used for {first.method} {first.path}, "
            f"not {request.method} {request.path}."
        )
    if first.body_hash != request.body_hash:
        return "This Idempotency-Key was first used with a different request body."
    return None


def _replay(first: IdempotencyRecord) -> Reply:
    # Compared in lower case, whatever spelling an earlier version stored.
    headers = tuple(
        (name.lower(), value)
        for name, value in json.loads(first.headers)
        if name.lower() in _KEPT_HEADERS
    )
    return Reply(first.status, first.body, (*headers, (REPLAYED, "true")))


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
    tenant = request.tenant
    async with db.transaction() as transaction:
        lock = f"idempotency:{tenant.account_id}:{int(tenant.livemode)}:{request.key}"
        if not await transaction.try_lock(lock):
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                param="Idempotency-Key",
            )
        first = await records.find(transaction, tenant, request.key, now_ms() - ttl_ms)
        if first is not None:
            problem = _mismatch(request, first)
            if problem:
                raise IdempotencyKeyReused(problem, param="Idempotency-Key")
            return _replay(first)
        try:
            reply = await execute(transaction)
        except APIError as error:
            if error.status >= 500:
                raise
            reply = error_response(error, request_id)
        record = IdempotencyRecord(
            request.method,
            request.path,
            request.body_hash,
            reply.status,
            _stored_headers(reply, request_id),
            reply.body,
        )
        await records.save(transaction, tenant, request.key, record, now_ms())
        return reply
