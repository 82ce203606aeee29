"""Dashboard sessions: a browser signed in with an API key, known by a random token.

The browser holds the token in an HttpOnly cookie; this table keeps the token's SHA-256, the
id of the API key that opened the session (the secret is never stored), its tenant and when
it expires. A session is valid only while its key is not revoked, checked on every request
by one indexed join, so revoking a key signs its dashboard sessions out too.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from overplane.storage.database import Executor
from overplane.storage.ids import new_random_token
from overplane.storage.tenant import Tenant


class SessionInfo(NamedTuple):
    """Who a valid session acts for: the tenant, the key's id and hint, the account's name."""

    tenant: Tenant
    key_id: str
    key_hint: str
    account_name: str
    expires_at: int


def session_hash(token: str) -> str:
    """The SHA-256 (hex) under which a session token is kept."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create(db: Executor, tenant: Tenant, key_id: str, now_ms: int, expires_at: int) -> str:
    """Open a session for the key ``key_id`` and return its token (256 random bits)."""
    token = new_random_token(32)
    await db.execute(
        "INSERT INTO dashboard_sessions (account_id, token_hash, key_id, livemode, created_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (tenant.account_id, session_hash(token), key_id, tenant.livemode, now_ms, expires_at),
    )
    return token


async def find(db: Executor, token: str, now_ms: int) -> SessionInfo | None:
    """The session of ``token`` if it has not expired and its key is not revoked."""
    if not token or len(token) > 200:
        return None
    row = await db.fetch_one(
        "SELECT s.account_id, s.livemode, s.key_id, k.hint, a.name, s.expires_at "
        "FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id "
        "JOIN accounts a ON a.id = s.account_id "
        "WHERE s.token_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL",
        (session_hash(token), now_ms),
    )
    if row is None:
        return None
    tenant = Tenant(str(row[0]), bool(row[1]))
    return SessionInfo(tenant, str(row[2]), str(row[3]), str(row[4]), int(row[5]))


async def end(db: Executor, token: str) -> None:
    """Sign the session out (nothing happens for an unknown token)."""
    await db.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (session_hash(token),))


async def sweep(db: Executor, now_ms: int) -> None:
    """Forget expired sessions."""
    await db.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now_ms,))
