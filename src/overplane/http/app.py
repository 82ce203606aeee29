"""The ASGI application: the path every request takes, and the one place errors are rendered.

``request ─▶ request id ─▶ trailing slash folded ─▶ CORS preflight answered (listed origins)
─▶ (/api only) address blocked for failed authentications? ─▶ auth (before routing)
─▶ the key's rate limit ─▶ ApiRouter (paths derived from the declarations) ─▶ handler
─▶ Reply + Request-Id + RateLimit-* (+ CORS) ─▶ log``

Authentication runs before routing so that a caller without a valid key learns nothing, not
even whether a route exists; the key's rate limit runs right after it, before any other work. Any exception below is turned into the contract's error JSON here.
The few paths outside /api (health, OpenAPI, docs) go through a Starlette router; /api paths
skip the framework (see :mod:`overplane.http.messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Message, Receive, Scope, Send

from overplane import logs, metrics
from overplane.auth.keys import Principal, PrincipalCache
from overplane.clock import now_ms
from overplane.declarations import RESOURCES
from overplane.http import access_log, openapi
from overplane.http.calendar_feeds import CalendarFeedEndpoint
from overplane.http.cors import Cors
from overplane.http.errors import (
    APIError,
    AuthenticationFailed,
    InternalError,
    MethodNotAllowed,
    RateLimited,
    RouteMissing,
    Unavailable,
    error_response,
)
from overplane.http.events import EventEndpoint
from overplane.http.messages import ApiRequest, send_reply
from overplane.http.routes import ApiRouter, ResourceEndpoint, Services
from overplane.http.webhook_endpoints import WebhookEndpointEndpoint
from overplane.limits import Decision, RateLimiter
from overplane.rendering import encode
from overplane.settings import Settings
from overplane.storage import idempotency as idempotency_records
from overplane.storage.database import Database, DatabaseUnavailable, open_database
from overplane.storage.events import sweep as sweep_events
from overplane.storage.ids import new_request_id
from overplane.storage.objects import sweep_tombstones
from overplane.storage.sessions import sweep as sweep_sessions
from overplane.storage.webhooks import sweep as sweep_webhooks
from overplane.web import pages
from overplane.web.calendar import feed_routes
from overplane.web.dashboard import Dashboard
from overplane.webhooks.worker import DeliveryWorker

logger = logging.getLogger("overplane.errors")
#: The paths outside /api that the router serves as they are (metrics label them by path).
STATIC_ROUTES = frozenset({"/", "/docs", "/healthz", "/readyz", "/openapi.json"})
JSON = "application/json"


#: The messages of the two 429s.
OVER_BUDGET = (
    "Too many requests with this API key; retry after the Retry-After delay (the "
    "RateLimit-* headers show the budget)."
)
TOO_MANY_FAILURES = (
    "Too many failed authentications from this address; retry after the Retry-After delay."
)


E = TypeVar("E", bound=APIError)


def with_limit(error: E, decision: Decision | None) -> E:
    """``error``, to be sent with ``decision``'s RateLimit-* headers (none for None)."""
    if decision is not None:
        error.limit_headers = decision.headers()
    return error


def client_address(scope: Scope) -> str | None:
    """The client's IP address as the HTTP server reports it (behind a trusted proxy,
    uvicorn puts the forwarded one there), or None (a Unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; "" for another scheme; None if absent."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class OverplaneApp:
    """The API server as an ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Database | None = None
        self.principals = PrincipalCache(settings.auth_cache_seconds)
        self.sweeper: asyncio.Task[None] | None = None
        #: The webhook delivery worker (``OVERPLANE_WEBHOOK_WORKER``), while open.
        self.worker: asyncio.Task[None] | None = None
        self.openapi_document = encode(openapi.document())
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            *pages.routes(),  # /, /docs and /static/…
            *Dashboard(
                RESOURCES,
                self.database,
                session_ms=settings.dashboard_session_hours * 3_600_000,
                events=settings.events,
            ).routes(),  # /dashboard/…
            *feed_routes(self.database),  # /calendar/{token}.ics
        ]
        self.router = Router(routes=routes, redirect_slashes=False)
        services = Services(db=self.database, idempotency_ttl_ms=lambda: self.idempotency_ttl_ms)
        self.api = ApiRouter(
            services,
            [
                *(ResourceEndpoint(resource, events=settings.events) for resource in RESOURCES),
                EventEndpoint(RESOURCES),
                WebhookEndpointEndpoint(RESOURCES, allow_private=settings.webhook_allow_private),
                CalendarFeedEndpoint(),
            ],
        )
        #: This process's metrics (``OVERPLANE_METRICS_LISTEN``), or None.
        self.metrics = metrics.recorder()
        self.log_access = access_log.configure(
            settings.access_log,
            settings.access_log_flush_seconds,
            logs.resolve(settings.log_format),
        )
        self.limiter = RateLimiter(settings)
        self.cors = Cors(settings.cors_origins)

    @property
    def idempotency_ttl_ms(self) -> int:
        """How long an idempotency key is honoured."""
        return self.settings.idempotency_ttl_hours * 3_600_000

    def database(self) -> Database:
        """The open database (the lifespan opens it before the first request)."""
        if self.db is None:
            raise Unavailable(self.settings.retry_after_seconds)
        return self.db

    async def open(self, db: Database | None = None) -> None:
        """Connect to the database (or adopt ``db``) and start the sweeper; run at start."""
        self.db = db or await open_database(self.settings)
        if self.settings.key_cache:
            self.db.watch_keys()
        self.sweeper = asyncio.create_task(self.sweep_forever())
        if self.metrics is not None:
            self.metrics.watch_pool(self.db.pool_stats)
        if self.settings.webhook_worker:
            worker = DeliveryWorker(self.db, self.settings, RESOURCES)
            self.worker = asyncio.create_task(worker.run_forever())

    async def close(self) -> None:
        """Stop the sweeper, write out the access log and release the database; run at
        shutdown."""
        self.log_access.flush()
        for task in (self.worker, self.sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.sweeper = self.worker = None
        await self.limiter.close()

        if self.metrics is not None:
            self.metrics.stop()
            metrics.mark_process_dead()
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def sweep(self) -> None:
        """Forget expired idempotency keys, cursor tombstones, events, finished deliveries and
        dashboard sessions (any process may do it)."""
        db = self.database()
        now = now_ms()
        await idempotency_records.sweep(db, now - self.idempotency_ttl_ms)
        await sweep_tombstones(db, now - self.settings.tombstone_ttl_days * 86_400_000)
        retention = now - self.settings.event_retention_days * 86_400_000
        await sweep_events(db, retention)
        await sweep_webhooks(db, retention)
        await sweep_sessions(db, now)

    async def sweep_forever(self) -> None:
        """Refresh the planner's statistics every ``statistics_interval_seconds`` and sweep
        every ``sweep_interval_seconds``; an unavailable database waits for the next turn."""
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.statistics_interval_seconds)
            try:
                await self.database().refresh_statistics()
                if time.monotonic() - last_sweep >= self.settings.sweep_interval_seconds:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except (DatabaseUnavailable, Unavailable) as exc:
                logger.warning("sweep skipped: %s", exc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Open the database at start and close it at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # The ~100,000 objects of the start-up (modules, the declarations, compiled
                # SQL) live as long as the process: moved out of the collector's sight, a
                # full collection no longer walks them. Full collections are rare under
                # load (one in 20 s of creates), but each stalled every request for 6-13 ms.
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request; every response gets a Request-Id and an access-log line."""
        started = time.perf_counter()
        request_id = new_request_id()
        status = 500
        response_started = False
        principal: Principal | None = None
        #: The RateLimit-* headers of the bucket this request took from (none when off).
        limit_headers: tuple[tuple[str, str], ...] = ()
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        origin = self.cors.allowed_origin(scope) if self.cors.enabled else None
        preflight = origin is not None and self.cors.is_preflight(scope)
        if origin is not None and not preflight:
            send = self.with_cors_headers(send, origin)
        try:
            if origin is not None and preflight:
                status = 204
                response_started = True
                await self.answer_preflight(send, origin, request_id)
            # "/api/" is folded to "/api" above, and it is an /api path like any other.
            elif path == "/api" or path.startswith("/api/"):
                if self.limiter.enabled:
                    principal = await self.authenticate_within_limits(scope)
                    # Assigned first, so that the access log names the account of a 429.
                    limit_headers = await self.take_from_key(principal)
                else:
                    principal = await self.authenticate(scope)
                request = ApiRequest(scope, receive, path, request_id, principal, self.database())
                reply = await self.api(request)
                if limit_headers:
                    reply = reply._replace(headers=reply.headers + limit_headers)
                status = reply.status
                response_started = True
                await send_reply(send, reply, request_id)
            else:

                async def send_with_request_id(message: Message) -> None:
                    nonlocal status, response_started
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        response_started = True
                        request_id_header = (b"request-id", request_id.encode())
                        message["headers"] = [*message.get("headers", ()), request_id_header]
                    await send(message)

                # The request id reaches the pages too: dashboard writes record it in events.
                scope = {**scope, "path": path, "app": self, "overplane.request_id": request_id}
                await self.router(scope, receive, send_with_request_id)
        except Exception as exc:
            if response_started:  # too late for an error body; the server closes the stream
                raise
            reply = error_response(self.as_api_error(exc, request_id, scope), request_id)
            # The key's bucket (an error after the limit was taken), or the bucket that
            # refused or charged the request (429, 401).
            if isinstance(exc, APIError) and exc.limit_headers:
                limit_headers = exc.limit_headers
            if limit_headers:
                reply = reply._replace(headers=reply.headers + limit_headers)
            status = reply.status
            await send_reply(send, reply, request_id)
        finally:
            if self.metrics is not None:
                self.metrics.request(
                    self.route_of(path), scope["method"], status, time.perf_counter() - started
                )
            self.log_access(
                scope["method"],
                path,
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
                principal.tenant.account_id if principal else None,
            )

    async def authenticate_within_limits(self, scope: Scope) -> Principal:
        """The principal, within the address's failed-authentication limit: raises
        :class:`RateLimited` (429) or :class:`AuthenticationFailed` (401), either carrying the
        address bucket's headers."""
        address = client_address(scope)
        blocked = self.limiter.blocked(address)
        if blocked is not None:  # answered without looking at the key
            raise with_limit(RateLimited(TOO_MANY_FAILURES, blocked.retry_after), blocked)
        try:
            principal = await self.authenticate(scope)
        except AuthenticationFailed as exc:
            charged = await self.limiter.failed_authentication(address)
            if charged is not None and not charged.allowed:
                refused = RateLimited(TOO_MANY_FAILURES, charged.retry_after)
                raise with_limit(refused, charged) from None
            with_limit(exc, charged)
            raise
        return principal

    async def take_from_key(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """A token from the key's bucket: its RateLimit-* headers, or :class:`RateLimited`
        (429) when it has none left."""
        decision = await self.limiter.take_for_key(principal.key_id, principal.tenant.livemode)
        if decision is None:  # failing open (Redis down): served without headers
            return ()
        if not decision.allowed:
            raise with_limit(RateLimited(OVER_BUDGET, decision.retry_after), decision)
        return decision.headers()

    def with_cors_headers(self, send: Send, origin: str) -> Send:
        """``send``, adding the CORS headers for ``origin`` to the response's start."""
        extra = self.cors.response_headers(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_cors

    async def answer_preflight(self, send: Send, origin: str, request_id: str) -> None:
        """``204`` to a CORS preflight from an allowed origin: no key needed, no limit taken
        (browsers send preflights without credentials and cache the answer)."""
        headers = [*self.cors.preflight_headers(origin), (b"request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def route_of(self, path: str) -> str:
        """The route template of ``path`` (bounded label values for the metrics)."""
        if path == "/api" or path.startswith("/api/"):
            return self.api.route_of(path)
        if path in STATIC_ROUTES:
            return path
        if path.startswith("/static/"):
            return "/static/{path}"
        return "unmatched"

    async def authenticate(self, scope: Scope) -> Principal:
        """The principal behind the request's bearer key, or 401."""
        token = bearer_token(scope)
        if not token:
            if token is None:
                raise AuthenticationFailed(
                    "No API key provided; send Authorization: Bearer <secret key>.",
                    code="api_key_missing",
                )
            raise AuthenticationFailed(
                "Send the API key as Authorization: Bearer <secret key>.", code="api_key_invalid"
            )
        principal = await self.principals.authenticate(self.database(), token)
        if principal is None:
            raise AuthenticationFailed("Invalid API key provided.", code="api_key_invalid")
        return principal

    def as_api_error(self, exc: Exception, request_id: str, scope: Scope) -> APIError:
        """The contract's error for any exception raised while serving a request."""
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, HTTPException) and exc.status_code == 404:
            return RouteMissing(f"Unrecognized request URL ({scope['method']} {scope['path']}).")
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            allowed = sorted(m.strip() for m in (exc.headers or {}).get("Allow", "").split(","))
            return MethodNotAllowed(scope["method"], allowed)
        if isinstance(exc, DatabaseUnavailable):
            logger.warning("database unavailable (%s): %s", request_id, exc)
            return Unavailable(self.settings.retry_after_seconds)
        logger.exception("unhandled error while serving %s", request_id)
        return InternalError()

    async def healthz(self, request: Request) -> Response:
        """The process is up."""
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def readyz(self, request: Request) -> Response:
        """The database answers."""
        if self.db is None:
            raise Unavailable(self.settings.retry_after_seconds)
        await self.db.ping()
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def openapi_json(self, request: Request) -> Response:
        """The OpenAPI 3.1 document, derived from the declarations."""
        return Response(self.openapi_document, media_type=JSON)


def create_app(settings: Settings | None = None) -> OverplaneApp:
    """The application for ``settings`` (default: read from the environment)."""
    return OverplaneApp(settings or Settings.from_environ())
