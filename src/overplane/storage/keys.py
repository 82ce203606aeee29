"""The SQL of accounts and API keys: the rows behind ``auth/keys.py``.

Keys are stored only as SHA-256 hashes of their secrets (``auth/keys.py`` says why that is
enough); this module never sees a secret.
"""

from __future__ import annotations

from typing import NamedTuple

from overplane.storage.database import Database
from overplane.storage.tenant import Tenant


class KeyRow(NamedTuple):
    """What may be shown about a key: never its secret or hash."""

    id: str
    account_name: str
    livemode: bool
    hint: str
    created_at: int
    revoked_at: int | None


class AccountRow(NamedTuple):
    """An account and how many of its keys still work, per mode."""

    id: str
    name: str
    created_at: int
    test_keys: int
    live_keys: int


class ActiveKey(NamedTuple):
    """An unrevoked key found by its hash, and the tenant it opens."""

    id: str
    tenant: Tenant
    secret_hash: str


async def insert_account(db: Database, account_id: str, name: str, created_at: int) -> None:
    """Store a new account."""
    await db.execute(
        "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
        (account_id, name, created_at),
    )


async def account_id_of(db: Database, name: str) -> str | None:
    """The id of the account called ``name``, or None."""
    row = await db.fetch_one("SELECT id FROM accounts WHERE name = ?", (name,))
    return None if row is None else str(row[0])


async def list_accounts(db: Database) -> list[AccountRow]:
    """Every account, oldest first, with its count of unrevoked keys in each mode."""
    rows = await db.fetch_all(
        "SELECT a.id, a.name, a.created_at, "
        "SUM(CASE WHEN k.id IS NOT NULL AND k.revoked_at IS NULL AND NOT k.livemode "
        "THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN k.id IS NOT NULL AND k.revoked_at IS NULL AND k.livemode "
        "THEN 1 ELSE 0 END) "
        "FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id "
        "GROUP BY a.id, a.name, a.created_at ORDER BY a.created_at, a.id"
    )
    return [
        AccountRow(str(account_id), str(name), int(created), int(test or 0), int(live or 0))
        for account_id, name, created, test, live in rows
    ]


async def has_any_account(db: Database) -> bool:
    """Whether the database holds an account yet (a brand-new installation holds none)."""
    return await db.fetch_one("SELECT 1 FROM accounts LIMIT 1") is not None


async def insert_key(
    db: Database,
    key_id: str,
    tenant: Tenant,
    secret_hash: str,
    hint: str,
    created_at: int,
) -> None:
    """Store a new key by its hash."""
    await db.execute(
        "INSERT INTO api_keys (id, account_id, livemode, secret_hash, hint, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, *tenant.args, secret_hash, hint, created_at),
    )


async def key_id_by_hash(db: Database, secret_hash: str) -> str | None:
    """The id of the key with this hash, revoked or not; None if there is none."""
    row = await db.fetch_one("SELECT id FROM api_keys WHERE secret_hash = ?", (secret_hash,))
    return None if row is None else str(row[0])


async def active_key(db: Database, secret_hash: str) -> ActiveKey | None:
    """The unrevoked key with this hash, or None."""
    row = await db.fetch_one(
        "SELECT id, account_id, livemode, secret_hash FROM api_keys "
        "WHERE secret_hash = ? AND revoked_at IS NULL",
        (secret_hash,),
    )
    if row is None:
        return None
    key_id, account_id, livemode, stored_hash = row
    return ActiveKey(str(key_id), Tenant(str(account_id), bool(livemode)), str(stored_hash))


async def list_keys(db: Database, account_name: str | None = None) -> list[KeyRow]:
    """Every key (of one account, if named), oldest first."""
    sql = (
        "SELECT k.id, a.name, k.livemode, k.hint, k.created_at, k.revoked_at "
        "FROM api_keys k JOIN accounts a ON a.id = k.account_id"
    )
    args: tuple[str, ...] = ()
    if account_name is not None:
        sql += " WHERE a.name = ?"
        args = (account_name,)
    rows = await db.fetch_all(sql + " ORDER BY k.created_at, k.id", args)
    return [
        KeyRow(str(key_id), str(name), bool(livemode), str(hint), int(created), revoked)
        for key_id, name, livemode, hint, created, revoked in rows
    ]


async def revoke(db: Database, key_id: str, revoked_at: int) -> bool:
    """Mark an unrevoked key revoked; False if there is no such unrevoked key."""
    row = await db.fetch_one(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
        (revoked_at, key_id),
    )
    return row is not None
