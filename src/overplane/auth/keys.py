"""Accounts and secret keys: create, list, revoke, and authenticate a presented key.

A secret key is ``sk_test_`` or ``sk_live_`` followed by 256 random bits. Only its SHA-256
hash is stored (a fast hash is right here: the keys have full entropy, so there is nothing to
brute-force), plus a short hint (``sk_test_…a1b2``) to tell keys apart in listings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import NamedTuple

from overplane.clock import now_ms
from overplane.storage import keys as stored_keys
from overplane.storage.database import Database
from overplane.storage.ids import new_random_token
from overplane.storage.keys import KeyRow
from overplane.storage.tenant import Tenant

DEFAULT_ACCOUNT = "default"
MODES = {"test": False, "live": True}
_SECRET = re.compile(r"^sk_(test|live)_[0-9A-Za-z]{16,128}$")


class CredentialError(Exception):
    """A key or account operation that cannot be done (unknown account, duplicate name, …)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the secret."""

    id: str
    account_name: str
    mode: str
    hint: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the key's id and the account and mode it may see."""

    key_id: str
    tenant: Tenant


def hash_secret(secret: str) -> str:
    """The stored form of a secret key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mode_of(secret: str) -> str | None:
    """``test`` or ``live`` for a well-formed secret key, else None."""
    match = _SECRET.match(secret)
    return match.group(1) if match else None


def hint_of(secret: str) -> str:
    """A masked form that never reveals enough to use the key: ``sk_test_…a1b2``."""
    prefix = secret[:8] if secret.startswith(("sk_test_", "sk_live_")) else ""
    return f"{prefix}…{secret[-4:]}"


def new_secret(mode: str) -> str:
    """A new secret key for ``mode`` (``test`` or ``live``)."""
    if mode not in MODES:
        raise CredentialError(f"mode must be test or live, not {mode!r}")
    return f"sk_{mode}_{new_random_token(32)}"


async def create_account(db: Database, name: str) -> str:
    """Create an account called ``name`` and return its id."""
    name = name.strip()
    if not name or len(name) > 200:
        raise CredentialError("an account name must have 1 to 200 characters")
    if await stored_keys.account_id_of(db, name) is not None:
        raise CredentialError(f"an account named {name!r} already exists")
    account_id = "acct_" + new_random_token(12)
    await stored_keys.insert_account(db, account_id, name, now_ms())
    return account_id


account_id_of = stored_keys.account_id_of
has_any_account = stored_keys.has_any_account
#: Every account, oldest first, with its count of working keys per mode.
list_accounts = stored_keys.list_accounts


async def register_key(db: Database, account_name: str, secret: str) -> KeyInfo:
    """Store ``secret`` (already generated or chosen by an operator) as a key of the account."""
    mode = mode_of(secret)
    if mode is None:
        raise CredentialError(
            "a secret key looks like sk_test_… or sk_live_… (16 to 128 letters/digits)"
        )
    account_id = await account_id_of(db, account_name)
    if account_id is None:
        raise CredentialError(f"no account named {account_name!r}")
    secret_hash = hash_secret(secret)
    if await stored_keys.key_id_by_hash(db, secret_hash) is not None:
        raise CredentialError("that key is already registered")
    info = KeyInfo(
        id="key_" + new_random_token(12),
        account_name=account_name,
        mode=mode,
        hint=hint_of(secret),
        created_at=now_ms(),
        revoked_at=None,
    )
    tenant = Tenant(account_id, MODES[mode])
    await stored_keys.insert_key(db, info.id, tenant, secret_hash, info.hint, info.created_at)
    return info


async def create_key(db: Database, account_name: str, mode: str) -> tuple[KeyInfo, str]:
    """Generate and store a new key; return its info and the secret (shown only this once)."""
    secret = new_secret(mode)
    return await register_key(db, account_name, secret), secret


def _info(row: KeyRow) -> KeyInfo:
    mode = "live" if row.livemode else "test"
    return KeyInfo(row.id, row.account_name, mode, row.hint, row.created_at, row.revoked_at)


async def list_keys(db: Database, account_name: str | None = None) -> list[KeyInfo]:
    """Every key (of one account, if named), oldest first."""
    return [_info(row) for row in await stored_keys.list_keys(db, account_name)]


async def revoke_key(db: Database, key_id: str) -> None:
    """Revoke a key: from now on it authenticates nothing. Revoking twice is an error."""
    revoked = await stored_keys.revoke(db, key_id, now_ms())
    db.keys_changed()
    if not revoked:
        raise CredentialError(f"no unrevoked key with id {key_id!r}")


async def authenticate(db: Database, secret: str) -> Principal | None:
    """The principal for a presented secret key, or None if it is malformed, unknown or revoked."""
    if mode_of(secret) is None:
        return None
    return await _principal_of(db, hash_secret(secret))


async def _principal_of(db: Database, secret_hash: str) -> Principal | None:
    key = await stored_keys.active_key(db, secret_hash)
    # The lookup is by hash, so timing reveals nothing about the secret; compare anyway, in
    # constant time, so that correctness never rests on the index alone.
    if key is None or not hmac.compare_digest(key.secret_hash, secret_hash):
        return None
    return Principal(key_id=key.id, tenant=key.tenant)


class _CachedPrincipal(NamedTuple):
    principal: Principal
    #: time.monotonic() after which a fixed-time entry is stale (unused while told of changes)
    expires_at: float


class PrincipalCache:
    """Remembers successful key lookups, sparing a query per request, when that is safe.

    Two ways, either enough on its own:

    - **Told of changes** (the default, ``OVERPLANE_KEY_CACHE``): while the database reports
      a :meth:`~overplane.storage.database.Database.keys_version` (PostgreSQL: a connection
      listening for the notifications a trigger on api_keys sends; SQLite: an inotify watch
      on the database's directory), entries are kept until that version moves, which any
      revocation anywhere makes happen within milliseconds. While it reports None (the
      listener is reconnecting, no inotify), nothing is answered from memory on its word.
    - **For a fixed time** (``seconds`` > 0, off by default): a key revoked by another process
      keeps working here until its entry expires; for when changes cannot be heard.

    Unknown keys are never cached, so a new key works at once. Entries are keyed by the key's
    hash, never by the secret itself.
    """

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, _CachedPrincipal] = {}
        self._version: int | None = None

    async def authenticate(self, db: Database, secret: str) -> Principal | None:
        """Like :func:`authenticate`, answered from memory while that is safe."""
        version = db.keys_version()
        if (version is None and self.seconds <= 0) or mode_of(secret) is None:
            return await authenticate(db, secret)
        if version != self._version:  # a key changed somewhere, or the listener reconnected
            self._entries.clear()
            self._version = version
        digest = hash_secret(secret)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is not None and (version is not None or entry.expires_at > now):
            return entry.principal
        principal = await _principal_of(db, digest)
        if principal is None:
            self._entries.pop(digest, None)
        elif db.keys_version() == version:  # no revocation arrived while the query ran
            if len(self._entries) >= self.max_entries:
                # Dicts keep insertion order: drop the oldest entry.
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest] = _CachedPrincipal(principal, now + self.seconds)
        return principal


async def ensure_bootstrap(db: Database, bootstrap_key: str | None) -> str | None:
    """Make a brand-new installation usable; return a generated secret to print, if any.

    With ``bootstrap_key`` set, register it for the default account unless it is registered
    already (a revoked bootstrap key stays revoked). Without it, on a database with no account
    yet, create the default account and a test key and return that key.
    """
    if bootstrap_key:
        if mode_of(bootstrap_key) is None:
            raise CredentialError("OVERPLANE_BOOTSTRAP_KEY must look like sk_test_… or sk_live_…")
        if await account_id_of(db, DEFAULT_ACCOUNT) is None:
            await create_account(db, DEFAULT_ACCOUNT)
        if await stored_keys.key_id_by_hash(db, hash_secret(bootstrap_key)) is None:
            await register_key(db, DEFAULT_ACCOUNT, bootstrap_key)
        return None
    if await has_any_account(db):
        return None
    await create_account(db, DEFAULT_ACCOUNT)
    _, secret = await create_key(db, DEFAULT_ACCOUNT, "test")
    return secret
