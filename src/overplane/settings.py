"""The server's configuration: one typed object, read once from the environment.

Every operational limit is a named setting here, declared once: the attribute, its type and
default, the environment variable, the parser and the help text are one ``setting(...)`` line
of :class:`Settings`. ``docs/configuration.md``'s table is that declaration rendered
(:func:`markdown_table`; a test fails when the page differs). Numbers fixed by the API
contract (list limits, the 1 MiB body cap) are not settings: an operator must not be able to
break the contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

#: The SQLite file's name inside ``OVERPLANE_HOME`` when no database URL is set.
DATABASE_FILE = "overplane.sqlite3"
T = TypeVar("T")


def default_home(environ: Mapping[str, str] | None = None) -> str:
    """Where Overplane keeps its files when ``OVERPLANE_HOME`` is unset: ``overplane`` in the
    XDG data directory, ``$XDG_DATA_HOME`` or else ``~/.local/share``.

    Never the working directory: a server started from one directory and an admin command run
    from another must open the same database. A relative ``XDG_DATA_HOME`` is ignored, as the
    XDG Base Directory specification says.
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return str(Path(xdg) / "overplane")
    home = env.get("HOME") or str(Path.home())
    return str(Path(home) / ".local" / "share" / "overplane")


def default_database_url(home: str) -> str:
    """The SQLite database used when ``OVERPLANE_DATABASE_URL`` is unset: a file in ``home``."""
    return f"sqlite:///{Path(home) / DATABASE_FILE}"


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


def _parse_log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"auto", "json", "text"}:
        raise ValueError("expected auto, json or text")
    return value


def _parse_listen_address(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, e.g. 127.0.0.1:9464")
    return value


def _parse_seconds(raw: str) -> float:
    """A duration: seconds (``10``, ``2.5``, ``10s``) or milliseconds (``500ms``)."""
    text = raw.strip().lower()
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif text.endswith("s"):
        text = text[:-1]
    value = float(text) * scale
    # A day at most: PostgreSQL's statement_timeout is a 32-bit count of milliseconds.
    if not 0 < value <= 86_400:
        raise ValueError("expected a duration from 1ms to 86400 s (10, 2.5, 10s or 500ms)")
    return value


def _parse_optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _parse_origins(raw: str) -> tuple[str, ...]:
    """Comma- or space-separated origins (``https://app.example.com``, with a port if not
    the scheme's own), or ``*``; lower-cased, as browsers send them."""
    origins: list[str] = []
    for item in raw.replace(",", " ").split():
        origin = item.strip().rstrip("/").lower()
        if origin != "*":
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(f"{item!r} is not an origin like https://app.example.com")
            if parts.path or parts.query or parts.fragment or parts.username:
                raise ValueError(f"{item!r}: an origin is a scheme, a host and a port only")
        origins.append(origin)
    return tuple(origins)


def _parse_directory(raw: str) -> str:
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute():
        # A relative directory would again depend on where each command happens to run.
        raise ValueError("expected an absolute directory (or one starting with ~)")
    return str(path)


@dataclass(frozen=True, slots=True)
class Setting:
    """Everything about one setting but its attribute name: how it is read and documented."""

    env: str
    parse: Callable[[str], Any]
    default: Any
    #: Markdown, as docs/configuration.md shows it.
    help: str
    #: Former names of the variable, still read when ``env`` is unset (``env`` wins).
    aliases: tuple[str, ...] = ()
    #: The default as the page shows it, when it depends on the machine (a home directory).
    documented: str | None = None
    #: Shown masked by ``overplane config``: a key, or a URL that may hold a password.
    secret: bool = False

    @property
    def documented_default(self) -> str:
        """The default as the configuration page shows it: ``unset``, `true`, `0.2`, `10`."""
        if self.documented is not None:
            return self.documented
        value = self.default
        if value is None or value == ():
            return "unset"
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


_SPEC = "overplane.setting"


def setting(
    default: T,
    *,
    env: str,
    parse: Callable[[str], T],
    help: str,
    aliases: tuple[str, ...] = (),
    documented: str | None = None,
    secret: bool = False,
) -> T:
    """Declare one attribute of :class:`Settings`: its default, the environment variable
    that overrides it (and any former names of it, still read), the parser of that
    variable's text, and its documentation.

    Typed as the default's type so that the dataclass (and mypy) see a plain default; the
    :class:`Setting` rides in the field's metadata.
    """
    spec = Setting(
        env=env,
        parse=parse,
        default=default,
        help=help,
        aliases=aliases,
        documented=documented,
        secret=secret,
    )
    result: T = field(default=default, metadata={_SPEC: spec})
    return result


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server, the CLI and the tests can configure."""

    home: str = setting(
        "",
        env="OVERPLANE_HOME",
        parse=_parse_directory,
        documented="`$XDG_DATA_HOME/overplane`, else `~/.local/share/overplane`",
        help="An absolute directory for Overplane's own files: the default SQLite database "
        "(`overplane.sqlite3`). Created (mode 700) by the first command that needs it. Never "
        "the working directory, so `serve` and every other command agree wherever they run "
        "(`overplane config` prints the result).",
    )
    database_url: str = setting(
        "",
        env="OVERPLANE_DATABASE_URL",
        parse=str,
        secret=True,
        documented="`sqlite:///$OVERPLANE_HOME/overplane.sqlite3`",
        help="Where the data lives: `sqlite:////absolute/path.sqlite3`, "
        "`sqlite:///relative/path.sqlite3` (relative to the working directory of each "
        "command: avoid) or `postgresql://user@host:port/dbname`. Empty means the default.",
    )
    bootstrap_key: str | None = setting(
        None,
        env="OVERPLANE_BOOTSTRAP_KEY",
        parse=_parse_optional_str,
        secret=True,
        help="A `sk_test_…` or `sk_live_…` key (16–128 letters and digits after the prefix) "
        "that `overplane serve` registers for the `default` account at start if it is not "
        "registered yet, so scripts and CI know a key in advance. A revoked bootstrap key "
        "stays revoked.",
    )
    access_log: bool = setting(
        True,
        env="OVERPLANE_ACCESS_LOG",
        parse=_parse_bool,
        help='Write one JSON line per request to standard error (`true`/`false`): `{"time", '
        '"method", "path", "status", "duration_ms", "request_id", "account_id"}`, never a '
        "key, a body or the query string.",
    )
    log_format: str = setting(
        "auto",
        env="OVERPLANE_LOG_FORMAT",
        parse=_parse_log_format,
        help="`json`: every line the server writes on standard error (start and stop, "
        "warnings, errors with their traceback in an `exception` field, the access log) is "
        'one JSON object, `{"time", "level", "logger", "pid", "message", …}`. `text`: '
        "readable lines. `auto`: `text` when standard error is a terminal, else `json`.",
    )
    metrics_listen: str | None = setting(
        None,
        env="OVERPLANE_METRICS_LISTEN",
        parse=_parse_listen_address,
        help="Serve Prometheus metrics (`GET /metrics`) on this `host:port`, e.g. "
        "`127.0.0.1:9464`, apart from the API's port; unset: no metrics, and nothing "
        "counted. With `--workers N` the figures are the sum over the workers (see "
        '[deployment.md](deployment.md), "Metrics").',
    )
    access_log_flush_seconds: float = setting(
        0.2,
        env="OVERPLANE_ACCESS_LOG_FLUSH_SECONDS",
        parse=_parse_non_negative_float,
        help="The access log is written in batches, one system call each: at most this many "
        "seconds after a request, sooner when 64 KiB of lines wait, and at shutdown. A "
        "process killed with SIGKILL loses at most this window of lines. `0` writes each "
        "line at once, which costs about a quarter of a point read's throughput (see "
        "[performance.md](performance.md)).",
    )
    auth_cache_seconds: float = setting(
        0.0,
        env="OVERPLANE_AUTH_CACHE_SECONDS",
        parse=_parse_non_negative_float,
        help="Remember a successful key lookup for this many seconds even while revocations "
        "cannot be heard (`OVERPLANE_KEY_CACHE=false`, PostgreSQL's listening connection "
        "down, SQLite without inotify), saving one database query per request. `0` checks "
        "the key on every request in those cases, so a revoked key stops working at once; "
        "with a cache, a key revoked by another process keeps working in this one for up "
        "to this long.",
    )
    key_cache: bool = setting(
        True,
        env="OVERPLANE_KEY_CACHE",
        parse=_parse_bool,
        help="Cache key lookups while this process hears every change to the keys: one query "
        "fewer per request, and a revocation, however it is made (CLI, plain SQL, another "
        "process), still takes effect in every process within milliseconds. PostgreSQL: "
        "each server process keeps one extra connection (`application_name` "
        "`overplane-key-watch`) that `LISTEN`s for the notification a trigger on "
        "`api_keys` sends on every update, delete or truncate; every 5 s it sends itself a "
        "probe through the pool, and until a probe has come back (or when one does not) "
        "nothing is cached, so a connection dropped silently or a transaction-mode "
        "PgBouncer (which cannot carry `LISTEN`) only turns the cache off. SQLite: an "
        "inotify watch on the database's directory hears every write by any process "
        "(Linux; elsewhere nothing is cached); any write forgets the whole cache. `false`: "
        "every request's key is looked up.",
    )
    sqlite_busy_timeout_ms: int = setting(
        5000,
        env="OVERPLANE_SQLITE_BUSY_TIMEOUT_MS",
        parse=_parse_positive_int,
        help="How long a SQLite write waits for another process's write lock before the "
        "request fails with `503 unavailable` (at most `OVERPLANE_DATABASE_TIMEOUT`).",
    )
    pg_pool_min_size: int = setting(
        1,
        env="OVERPLANE_PG_POOL_MIN_SIZE",
        parse=_parse_positive_int,
        help="PostgreSQL connections each server process keeps open when idle.",
    )
    pg_pool_max_size: int = setting(
        10,
        env="OVERPLANE_PG_POOL_MAX_SIZE",
        parse=_parse_positive_int,
        help="The most PostgreSQL connections one server process opens. With N processes the "
        "server needs up to N × this many connections: keep it under PostgreSQL's "
        "`max_connections`.",
    )
    pg_statement_cache_size: int = setting(
        100,
        env="OVERPLANE_PG_STATEMENT_CACHE_SIZE",
        parse=int,
        help="Prepared statements asyncpg keeps per connection. Set `0` behind a PgBouncer in "
        "transaction mode older than 1.21 (see [deployment.md](deployment.md)).",
    )
    database_timeout_seconds: float = setting(
        10.0,
        env="OVERPLANE_DATABASE_TIMEOUT",
        aliases=("OVERPLANE_DB_TIMEOUT_SECONDS",),
        parse=_parse_seconds,
        help="The longest a request waits for a database connection, and the longest any one "
        "statement may run, before the request fails with `503 unavailable`: seconds (`10`, "
        "`2.5`, `10s`) or milliseconds (`500ms`). PostgreSQL: each connection's "
        "`statement_timeout` (the server cancels the statement, releasing its locks), and the "
        "driver gives up half a second later if the server does not answer at all. SQLite: "
        "a statement running longer is interrupted (a progress handler), and a write waits "
        "at most this long for another process's lock. The former name "
        "`OVERPLANE_DB_TIMEOUT_SECONDS` is still read when this one is unset.",
    )
    retry_after_seconds: int = setting(
        1,
        env="OVERPLANE_RETRY_AFTER_SECONDS",
        parse=_parse_positive_int,
        help="The `Retry-After` value sent with `503 unavailable`.",
    )
    idempotency_ttl_hours: int = setting(
        24,
        env="OVERPLANE_IDEMPOTENCY_TTL_HOURS",
        parse=_parse_positive_int,
        help="How long an `Idempotency-Key` is honoured (replayed) before it is forgotten "
        "and swept; clients expect at least 24.",
    )
    dashboard_session_hours: int = setting(
        12,
        env="OVERPLANE_DASHBOARD_SESSION_HOURS",
        parse=_parse_positive_int,
        help="How long a dashboard sign-in lasts (`/dashboard`); signing out or revoking the "
        "key ends it sooner.",
    )
    tombstone_ttl_days: int = setting(
        30,
        env="OVERPLANE_TOMBSTONE_TTL_DAYS",
        parse=_parse_positive_int,
        help="How long a deleted object's list position is kept, so that a cursor naming it "
        "(`starting_after`, `ending_before`) still works.",
    )
    events: bool = setting(
        True,
        env="OVERPLANE_EVENTS",
        parse=_parse_bool,
        help="Record an event with every accepted create, update and delete (`GET /api/events`, "
        "webhooks). `false` records none: only for measuring what events cost, or for a bulk "
        "load whose events nobody wants; webhook endpoints then receive nothing.",
    )
    event_retention_days: int = setting(
        30,
        env="OVERPLANE_EVENT_RETENTION_DAYS",
        parse=_parse_positive_int,
        help="How long events are kept (listed, retrievable, redeliverable) before they are swept.",
    )
    webhook_worker: bool = setting(
        True,
        env="OVERPLANE_WEBHOOK_WORKER",
        parse=_parse_bool,
        help="Run the webhook delivery worker inside each `overplane serve` process. `false` "
        "leaves deliveries to `overplane worker` processes (any number, on any host).",
    )
    webhook_allow_private: bool = setting(
        False,
        env="OVERPLANE_WEBHOOK_ALLOW_PRIVATE",
        parse=_parse_bool,
        help="Deliver webhooks to private, loopback and link-local addresses too. Off, a "
        "webhook URL cannot reach into the operator's network (checked at delivery time, "
        "after DNS). Tests and local development turn it on.",
    )
    webhook_timeout_seconds: float = setting(
        10.0,
        env="OVERPLANE_WEBHOOK_TIMEOUT_SECONDS",
        parse=_parse_positive_float,
        help="A delivery succeeds on a 2xx within this many seconds (connect, send, receive); "
        "anything else is retried. The name's lookup may take half as long again (at most 5 s), "
        "and a worker's lease on a delivery is both plus 2 s (17 s by default), so a delivery "
        "whose worker died is sent again within seconds.",
    )
    webhook_retry_base_seconds: float = setting(
        60.0,
        env="OVERPLANE_WEBHOOK_RETRY_BASE_SECONDS",
        parse=_parse_positive_float,
        help="The wait before the first retry; each later one waits twice as long (at most "
        "6 hours), with ±20% jitter.",
    )
    webhook_retry_for_seconds: float = setting(
        259200.0,
        env="OVERPLANE_WEBHOOK_RETRY_FOR_SECONDS",
        parse=_parse_positive_float,
        help="How long a delivery is retried (3 days by default) before it is given up and "
        "marked failed.",
    )
    webhook_max_response_bytes: int = setting(
        65536,
        env="OVERPLANE_WEBHOOK_MAX_RESPONSE_BYTES",
        parse=_parse_positive_int,
        help="The most of a receiver's response body read (and kept in the attempt log).",
    )
    webhook_concurrency: int = setting(
        32,
        env="OVERPLANE_WEBHOOK_CONCURRENCY",
        parse=_parse_positive_int,
        help="Deliveries one worker sends at once, to all endpoints together.",
    )
    webhook_endpoint_concurrency: int = setting(
        4,
        env="OVERPLANE_WEBHOOK_ENDPOINT_CONCURRENCY",
        parse=_parse_positive_int,
        help="Deliveries one worker sends at once to one endpoint, so a slow receiver holds "
        "only this many of the worker's slots.",
    )
    webhook_poll_seconds: float = setting(
        0.5,
        env="OVERPLANE_WEBHOOK_POLL_SECONDS",
        parse=_parse_positive_float,
        help="How often an idle worker looks for new events and due deliveries.",
    )
    webhook_relay_batch: int = setting(
        500,
        env="OVERPLANE_WEBHOOK_RELAY_BATCH",
        parse=_parse_positive_int,
        help="Events a worker's relay takes from the outbox in one transaction, making the "
        "deliveries they owe and counting them; a worker relays batch after batch until the "
        "outbox is empty.",
    )
    sweep_interval_seconds: int = setting(
        300,
        env="OVERPLANE_SWEEP_INTERVAL_SECONDS",
        parse=_parse_positive_int,
        help="How often each server process deletes expired idempotency keys, tombstones and "
        "events (harmless when several do).",
    )
    statistics_interval_seconds: float = setting(
        10.0,
        env="OVERPLANE_STATISTICS_INTERVAL_SECONDS",
        parse=_parse_positive_float,
        help="How often each server process checks for tables that changed much (1,000 rows "
        "and a tenth of the table) since the query planner's statistics were gathered, and "
        "analyzes them: PostgreSQL's autovacuum may be off or late, and without statistics a "
        "by-id statement can scan a whole account (see [deployment.md](deployment.md)).",
    )
    shutdown_timeout_seconds: int = setting(
        30,
        env="OVERPLANE_SHUTDOWN_TIMEOUT_SECONDS",
        parse=_parse_positive_int,
        help="On SIGTERM, how long the server waits for requests in flight before it closes "
        "their connections.",
    )
    rate_limit: bool = setting(
        True,
        env="OVERPLANE_RATE_LIMIT",
        parse=_parse_bool,
        help="Rate limits: per key (a token bucket each, budgets below) and failed "
        "authentications per client address. `off` turns every limit off (benchmarks, "
        "trusted networks), and the `RateLimit-*` headers with them. See "
        "[limits.md](limits.md).",
    )
    rate_limit_live_per_second: float = setting(
        100.0,
        env="OVERPLANE_RATE_LIMIT_LIVE_PER_SECOND",
        parse=_parse_positive_float,
        help="Requests per second one live-mode key may make, sustained (Stripe's budget).",
    )
    rate_limit_live_burst: int = setting(
        100,
        env="OVERPLANE_RATE_LIMIT_LIVE_BURST",
        parse=_parse_positive_int,
        help="Requests one idle live-mode key may make at once: the size of its bucket "
        "(`RateLimit-Limit`).",
    )
    rate_limit_test_per_second: float = setting(
        25.0,
        env="OVERPLANE_RATE_LIMIT_TEST_PER_SECOND",
        parse=_parse_positive_float,
        help="Requests per second one test-mode key may make, sustained (Stripe's budget).",
    )
    rate_limit_test_burst: int = setting(
        25,
        env="OVERPLANE_RATE_LIMIT_TEST_BURST",
        parse=_parse_positive_int,
        help="Requests one idle test-mode key may make at once.",
    )
    rate_limit_failed_auth_per_second: float = setting(
        1.0,
        env="OVERPLANE_RATE_LIMIT_FAILED_AUTH_PER_SECOND",
        parse=_parse_positive_float,
        help="Failed authentications (a missing, malformed, unknown or revoked key) per second "
        "one client address may make, sustained. Past it, requests from that address are "
        "answered `429 rate_limited` without their key being looked at, so keys cannot be "
        "guessed faster than this.",
    )
    rate_limit_failed_auth_burst: int = setting(
        20,
        env="OVERPLANE_RATE_LIMIT_FAILED_AUTH_BURST",
        parse=_parse_positive_int,
        help="Failed authentications one client address may make at once.",
    )
    redis_url: str | None = setting(
        None,
        env="OVERPLANE_REDIS_URL",
        parse=_parse_optional_str,
        help="`redis://host:6379/0`: keep the rate-limit buckets in Redis, so that every "
        "server process on every host enforces one limit. Unset: each process keeps its "
        "own buckets (N processes allow N times the budget).",
    )
    redis_prefix: str = setting(
        "overplane:ratelimit",
        env="OVERPLANE_REDIS_PREFIX",
        parse=str,
        help="The prefix of every Redis key the server writes (`<prefix>:key:<key id>`, "
        "`<prefix>:addr:<address>`), for sharing one Redis with other programs.",
    )
    redis_timeout_seconds: float = setting(
        0.1,
        env="OVERPLANE_REDIS_TIMEOUT_SECONDS",
        parse=_parse_positive_float,
        help="The longest one round trip to Redis may take (connect and answer; the takes of "
        "one event-loop turn share one). A request waits at most twice this: the round trip "
        "in flight, then its own. Past it, or when Redis refuses, the request is served "
        "unlimited (fail open), the outage is logged once, and Redis is tried again once a "
        "second.",
    )
    cors_origins: tuple[str, ...] = setting(
        (),
        env="OVERPLANE_CORS_ORIGINS",
        parse=_parse_origins,
        help="Browser origins allowed to call the API (comma-separated, "
        "`https://app.example.com,http://localhost:3000`, or `*` for any): their `OPTIONS` "
        "preflights are answered without a key, and responses to them carry the CORS "
        "headers. Unset: no CORS headers at all (a browser on another origin cannot read "
        "responses).",
    )

    http_header_timeout_seconds: float = setting(
        10.0,
        env="OVERPLANE_HTTP_HEADER_TIMEOUT_SECONDS",
        parse=_parse_positive_float,
        help="A request's line and headers must arrive within this many seconds of the "
        "connection opening (or of the request's first byte, on a kept-alive connection); "
        "then `408 request_timeout` and the connection is closed (a connection that sent "
        "nothing is closed without an answer). This is what closes slowloris connections. "
        "Kept to within 0.5 s.",
    )
    http_body_timeout_seconds: float = setting(
        30.0,
        env="OVERPLANE_HTTP_BODY_TIMEOUT_SECONDS",
        parse=_parse_positive_float,
        help="A request's whole body must arrive within this many seconds of its headers "
        "(the 1 MiB cap at 35 KB/s); then `408 request_timeout` and the connection is closed.",
    )
    http_send_timeout_seconds: float = setting(
        30.0,
        env="OVERPLANE_HTTP_SEND_TIMEOUT_SECONDS",
        parse=_parse_positive_float,
        help="A client that stops reading its response for this many seconds (the server's "
        "send buffer stays full) is disconnected, so its request does not wait forever.",
    )
    http_keep_alive_seconds: int = setting(
        5,
        env="OVERPLANE_HTTP_KEEP_ALIVE_SECONDS",
        parse=_parse_positive_int,
        help="An idle connection between requests is closed after this many seconds. Behind "
        "a load balancer, keep it longer than the balancer's own idle timeout.",
    )
    http_max_header_bytes: int = setting(
        16384,
        env="OVERPLANE_HTTP_MAX_HEADER_BYTES",
        parse=_parse_positive_int,
        help="The most bytes of request line (the URL with its query) and headers one request "
        "may send; more is `431 headers_too_large` and the connection is closed.",
    )
    http_max_headers: int = setting(
        100,
        env="OVERPLANE_HTTP_MAX_HEADERS",
        parse=_parse_positive_int,
        help="The most header fields one request may send; more is `431 headers_too_large`.",
    )
    http_max_connections: int = setting(
        10000,
        env="OVERPLANE_HTTP_MAX_CONNECTIONS",
        parse=_parse_positive_int,
        help="The most connections one server process holds open; another one is answered "
        "`503 unavailable` and closed. `overplane serve` raises its own open-file limit "
        "(`RLIMIT_NOFILE`) to fit, up to the hard limit, and says so when it cannot.",
    )

    def __post_init__(self) -> None:
        # The two defaults that depend on the machine are filled in here, so that
        # ``Settings()`` and ``Settings.from_environ()`` agree (the dataclass is frozen).
        if not self.home:
            object.__setattr__(self, "home", default_home())
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url(self.home))

    @property
    def database_is_default(self) -> bool:
        """Whether the database is the default SQLite file in :attr:`home`."""
        return self.database_url == default_database_url(self.home)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment).

        Unset variables keep their defaults; a malformed value raises :class:`SettingsError`
        naming the variable, so a typo fails at start, not on the first request.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for attribute, spec in SETTINGS.items():
            name = next((n for n in (spec.env, *spec.aliases) if n in env), None)
            if name is None:
                continue
            raw = env[name]
            try:
                values[attribute] = spec.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
        if not values.get("home"):
            values["home"] = default_home(env)  # this environment's HOME, not the process's
        return cls(**values)


def _declared() -> dict[str, Setting]:
    declared: dict[str, Setting] = {}
    for attribute in fields(Settings):
        spec = attribute.metadata.get(_SPEC)
        if not isinstance(spec, Setting):
            raise TypeError(f"Settings.{attribute.name} must be declared with setting(...)")
        declared[attribute.name] = spec
    return declared


#: Every setting by attribute name, in declaration order (the documentation's order).
SETTINGS: dict[str, Setting] = _declared()


def markdown_table() -> str:
    """docs/configuration.md's table of settings, rendered from the declarations."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [
        f"| `{spec.env}` | {spec.documented_default} | {spec.help} |" for spec in SETTINGS.values()
    ]
    return "\n".join(lines) + "\n"
