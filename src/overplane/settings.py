"""The server's configuration: one typed object, read once from the environment.

Every operational limit is a named setting here, documented in ``docs/configuration.md``
(a test fails when one is missing there). Numbers fixed by the API contract (list limits,
the 1 MiB body cap) are not settings: an operator must not be able to break the contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "sqlite:///overplane.sqlite3"


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("expected a number of at least 0")
    return value


def _parse_optional_str(raw: str) -> str | None:
    return raw.strip() or None


@dataclass(frozen=True, slots=True)
class Setting:
    """How one attribute of :class:`Settings` is read from the environment."""

    env: str
    parse: Callable[[str], Any]
    description: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server, the CLI and the tests can configure."""

    database_url: str = DEFAULT_DATABASE_URL
    bootstrap_key: str | None = None
    access_log: bool = True
    access_log_flush_seconds: float = 0.2
    auth_cache_seconds: float = 0.0
    key_cache: bool = True
    sqlite_busy_timeout_ms: int = 5000
    pg_pool_min_size: int = 1
    pg_pool_max_size: int = 10
    db_timeout_seconds: float = 10.0
    pg_statement_cache_size: int = 100
    retry_after_seconds: int = 1
    idempotency_ttl_hours: int = 24
    tombstone_ttl_days: int = 30
    sweep_interval_seconds: int = 300
    shutdown_timeout_seconds: int = 30

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment).

        Unset variables keep their defaults; a malformed value raises :class:`SettingsError`
        naming the variable, so a typo fails at start, not on the first request.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for attribute, spec in SETTINGS.items():
            raw = env.get(spec.env)
            if raw is None:
                continue
            try:
                values[attribute] = spec.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{spec.env}={raw!r}: {exc}") from None
        return cls(**values)


SETTINGS: dict[str, Setting] = {
    "database_url": Setting(
        "OVERPLANE_DATABASE_URL",
        str,
        "Where the data lives: sqlite:///path/to/file.sqlite3 (the default is "
        f"{DEFAULT_DATABASE_URL}, a file in the working directory) or "
        "postgresql://user@host:port/dbname.",
    ),
    "bootstrap_key": Setting(
        "OVERPLANE_BOOTSTRAP_KEY",
        _parse_optional_str,
        "A sk_test_… or sk_live_… secret key that `overplane serve` registers for the default "
        "account at start if it is not registered yet, so scripts and CI know a key in advance.",
    ),
    "access_log": Setting(
        "OVERPLANE_ACCESS_LOG",
        _parse_bool,
        "Write one JSON line per request to standard error (true or false).",
    ),
    "access_log_flush_seconds": Setting(
        "OVERPLANE_ACCESS_LOG_FLUSH_SECONDS",
        _parse_non_negative_float,
        "The access log is written in batches: at most this long after a request (sooner "
        "when 64 KiB of lines are waiting, and at shutdown). 0 writes every line at once, "
        "which costs throughput; a process killed with SIGKILL loses at most this window.",
    ),
    "auth_cache_seconds": Setting(
        "OVERPLANE_AUTH_CACHE_SECONDS",
        _parse_non_negative_float,
        "Remember a successful key lookup for this long, saving a database query per request. "
        "0 (the default) checks every request, so a revoked key stops working at once; with a "
        "cache, a key revoked elsewhere keeps working here for up to this long.",
    ),
    "key_cache": Setting(
        "OVERPLANE_KEY_CACHE",
        _parse_bool,
        "Cache API-key lookups while this process hears every change to the keys, saving a "
        "query per request; a revocation, however it is made, still takes effect everywhere "
        "within milliseconds. PostgreSQL: one extra connection LISTENs for the notification "
        "a trigger on api_keys sends. SQLite: an inotify watch on the database's directory "
        "reports every write (Linux). false looks up the key of every request.",
    ),
    "sqlite_busy_timeout_ms": Setting(
        "OVERPLANE_SQLITE_BUSY_TIMEOUT_MS",
        _parse_positive_int,
        "How long a SQLite write waits for another process's write lock before the request "
        "fails with 503 unavailable.",
    ),
    "pg_pool_min_size": Setting(
        "OVERPLANE_PG_POOL_MIN_SIZE",
        _parse_positive_int,
        "PostgreSQL connections each server process keeps open when idle.",
    ),
    "pg_pool_max_size": Setting(
        "OVERPLANE_PG_POOL_MAX_SIZE",
        _parse_positive_int,
        "The most PostgreSQL connections one server process opens.",
    ),
    "pg_statement_cache_size": Setting(
        "OVERPLANE_PG_STATEMENT_CACHE_SIZE",
        int,
        "Prepared statements asyncpg keeps per connection; 0 behind a PgBouncer in "
        "transaction mode older than 1.21 (which cannot route prepared statements).",
    ),
    "db_timeout_seconds": Setting(
        "OVERPLANE_DB_TIMEOUT_SECONDS",
        _parse_positive_float,
        "The longest a request waits for a database connection or statement before it fails "
        "with 503 unavailable.",
    ),
    "retry_after_seconds": Setting(
        "OVERPLANE_RETRY_AFTER_SECONDS",
        _parse_positive_int,
        "The Retry-After value sent with 503 unavailable.",
    ),
    "idempotency_ttl_hours": Setting(
        "OVERPLANE_IDEMPOTENCY_TTL_HOURS",
        _parse_positive_int,
        "How long an Idempotency-Key is honoured (replayed) before it is swept; at least 24 "
        "is what clients expect.",
    ),
    "tombstone_ttl_days": Setting(
        "OVERPLANE_TOMBSTONE_TTL_DAYS",
        _parse_positive_int,
        "How long a deleted object's list position is kept, so that a cursor naming it "
        "(starting_after, ending_before) still works.",
    ),
    "sweep_interval_seconds": Setting(
        "OVERPLANE_SWEEP_INTERVAL_SECONDS",
        _parse_positive_int,
        "How often each server process deletes expired idempotency keys and tombstones.",
    ),
    "shutdown_timeout_seconds": Setting(
        "OVERPLANE_SHUTDOWN_TIMEOUT_SECONDS",
        _parse_positive_int,
        "On SIGTERM, how long the server waits for requests in flight to finish before it "
        "closes their connections.",
    ),
}

assert set(SETTINGS) == {f.name for f in fields(Settings)}, "every setting needs an env spec"
