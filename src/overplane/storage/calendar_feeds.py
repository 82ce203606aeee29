"""Calendar feeds: tokens that let a calendar app read one tenant's appointments.

A feed's token is shown once, when the feed is created; the table keeps only its SHA-256
(hashed here, like API keys in ``auth/keys.py``), so a copy of the database opens no feed.
Deleting a feed revokes its token at once: the next poll finds nothing.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from overplane.storage.database import Executor, Row
from overplane.storage.ids import could_be_object_id, new_object_id, new_random_token
from overplane.storage.listing import Listing, ListQuery, Page, insert_statements
from overplane.storage.tenant import Tenant

FEED_PREFIX = "calfeed_"
TOKEN_PREFIX = "calt_"  # noqa: S105 (a prefix, not a secret)
COLUMNS = ("id", "created_at", "description")
_BY_ID = "id = ? AND account_id = ? AND livemode = ?"


class StoredFeed(NamedTuple):
    """One calendar feed as stored (its token is not: only its hash)."""

    id: str
    created_at: int
    description: str | None

    @classmethod
    def read(cls, row: Row, start: int = 0) -> StoredFeed:
        """The feed in ``row``'s :data:`COLUMNS` from ``start`` on."""
        return cls(str(row[start]), int(row[start + 1]), row[start + 2])


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a feed token is kept."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A new feed token: ``calt_`` and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + new_random_token(32)


class FeedStore:
    """The SQL of the ``calendar_feeds`` table."""

    def __init__(self) -> None:
        self.listing = Listing("calendar_feeds", COLUMNS, id_prefix=FEED_PREFIX, tombstones=True)
        self._insert = insert_statements(
            "calendar_feeds", ("account_id", "livemode", *COLUMNS, "token_hash")
        )

    async def create(
        self, db: Executor, tenant: Tenant, description: str | None, now_ms: int
    ) -> tuple[StoredFeed, str]:
        """A new feed and its token (returned only here)."""
        token = new_token()
        feed = StoredFeed(new_object_id(FEED_PREFIX), now_ms, description)
        await db.execute(self._insert[db.dialect], (*tenant.args, *feed, token_hash(token)))
        return feed, token

    async def retrieve(self, db: Executor, tenant: Tenant, feed_id: str) -> StoredFeed | None:
        """The feed, or None if this tenant has none with that id."""
        if not could_be_object_id(FEED_PREFIX, feed_id):
            return None
        row = await db.fetch_one(
            f"SELECT {', '.join(COLUMNS)} FROM calendar_feeds WHERE {_BY_ID}",
            (feed_id, *tenant.args),
        )
        return None if row is None else StoredFeed.read(row)

    async def delete(self, db: Executor, tenant: Tenant, feed_id: str) -> bool:
        """Delete the feed (its token opens nothing from now on); False if there is none."""
        if not could_be_object_id(FEED_PREFIX, feed_id):
            return False
        row = await db.fetch_one(
            f"DELETE FROM calendar_feeds WHERE {_BY_ID} RETURNING id", (feed_id, *tenant.args)
        )
        return row is not None

    async def list(self, db: Executor, tenant: Tenant, query: ListQuery) -> Page[StoredFeed]:
        """A page of the tenant's feeds, newest first."""
        return await self.listing.list(db, tenant, query, StoredFeed.read)

    async def tenant_of(self, db: Executor, token: str) -> Tenant | None:
        """Whose appointments the token opens, or None for a token no feed has (any more)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = await db.fetch_one(
            "SELECT account_id, livemode FROM calendar_feeds WHERE token_hash = ?",
            (token_hash(token),),
        )
        return None if row is None else Tenant(str(row[0]), bool(row[1]))
