"""The stored responses of writes sent with an Idempotency-Key (see ``http/idempotency.py``).

One row per key, per tenant: who sent it, what was sent (method, path, body hash) and the
response to replay. The row is written in the same transaction as the write it protects.
"""

from __future__ import annotations

from typing import NamedTuple

from overplane.storage.database import Executor
from overplane.storage.tenant import Tenant

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


class IdempotencyRecord(NamedTuple):
    """A write's request fingerprint and its response, as recorded under its key."""

    method: str
    path: str
    body_hash: str
    status: int
    #: The response headers worth replaying, as a JSON list of ``[name, value]`` pairs.
    headers: str
    body: bytes


async def find(
    db: Executor, tenant: Tenant, key: str, newer_than_ms: int
) -> IdempotencyRecord | None:
    """The record of ``key`` if it was written after ``newer_than_ms`` (older ones expired)."""
    row = await db.fetch_one(_FIND, (*tenant.args, key, newer_than_ms))
    if row is None:
        return None
    method, path, body_hash, status, headers, body = row
    return IdempotencyRecord(method, path, body_hash, status, headers, bytes(body))


async def save(
    db: Executor, tenant: Tenant, key: str, record: IdempotencyRecord, created_at_ms: int
) -> None:
    """Record ``key``'s response, replacing an expired record of the same key."""
    await db.execute(_SAVE, (*tenant.args, key, *record, created_at_ms))


async def sweep(db: Executor, before_ms: int) -> None:
    """Forget records written before ``before_ms`` (lookups already ignore them)."""
    await db.execute("DELETE FROM idempotency_keys WHERE created_at <= ?", (before_ms,))
