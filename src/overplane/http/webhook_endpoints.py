"""``/api/webhook-endpoints``: where an account's events are sent, and the log of attempts.

An endpoint is a URL, the event types it wants (``enabled_events``, ``*`` matching any run of
characters) and a signing secret (``whsec_…``) returned once, on create, and again only when
rotated (``POST …/{id}/rotate-secret``: for 24 hours deliveries carry signatures with both the
new and the old secret, so receivers can switch without losing a delivery).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from overplane.clock import now_ms
from overplane.declarations import Resource
from overplane.http.errors import (
    ParameterInvalid,
    ParameterMissing,
    ParameterUnknown,
    ResourceMissing,
)
from overplane.http.messages import ApiRequest, Reply
from overplane.http.routes import Endpoint, json_object, list_reply, reject_query
from overplane.rendering import deleted, encode, page, webhook_attempt, webhook_endpoint
from overplane.storage.database import Executor
from overplane.storage.ids import new_random_token
from overplane.storage.listing import ListQuery, Page
from overplane.storage.tenant import Tenant
from overplane.storage.webhooks import DeliveryStore, EndpointStore, StoredAttempt, StoredEndpoint
from overplane.validation.list_query import EventQueryParser, QueryParser
from overplane.webhooks.addresses import check_url_syntax

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
#: How long a rotated-out secret keeps signing beside the new one.
ROTATION_OVERLAP_MS = 24 * 3_600_000
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MAX_ENABLED_EVENTS = 100
_PATTERN = re.compile(r"[a-z0-9_.*]{1,100}", re.ASCII)
#: Sent back from a fetched endpoint: ignored, like an object's read-only keys.
_READ_ONLY = frozenset({"id", "created_at", "updated_at"})


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and 256 random bits."""
    return SECRET_PREFIX + new_random_token(32)


class WebhookEndpointEndpoint(Endpoint):
    """Create, retrieve, update, delete and list webhook endpoints; rotate a secret; list an
    endpoint's delivery attempts."""

    path = "/api/webhook-endpoints"
    COLLECTION_METHODS: ClassVar[Mapping[str, str]] = {"GET": "list", "POST": "create"}
    OBJECT_METHODS: ClassVar[Mapping[str, str]] = {
        "GET": "retrieve",
        "PATCH": "update",
        "DELETE": "delete",
    }
    ACTIONS: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "rotate-secret": {"POST": "rotate_secret"},
        "attempts": {"GET": "attempts"},
    }

    def __init__(self, resources: Iterable[Resource], *, allow_private: bool) -> None:
        self.types = EventQueryParser([t for r in resources for t in r.event_types])
        self.allow_private = allow_private
        self.store = EndpointStore()
        self.deliveries = DeliveryStore()
        self.list_parser = QueryParser()

    # --- validation --------------------------------------------------------------------------

    def _url(self, value: object) -> str:
        if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
            raise ParameterInvalid(
                f"url must be an http or https URL of at most {MAX_URL_LENGTH} characters.",
                param="url",
            )
        problem = check_url_syntax(value, allow_private=self.allow_private)
        if problem is not None:
            raise ParameterInvalid(f"url: {problem}", param="url")
        return value

    def _enabled_events(self, value: object) -> list[str]:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ENABLED_EVENTS:
            raise ParameterInvalid(
                f"enabled_events must be a list of 1 to {MAX_ENABLED_EVENTS} event types "
                "(* matches any run of characters).",
                param="enabled_events",
            )
        for index, pattern in enumerate(value):
            if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
                raise ParameterInvalid(
                    f"enabled_events[{index}] must be an event type such as "
                    "appointment.created, or a pattern such as appointment.* or *.",
                    param="enabled_events",
                )
            if not self.types.matching(pattern):
                raise ParameterInvalid(
                    f"enabled_events[{index}] matches no event type: {pattern!r}.",
                    param="enabled_events",
                )
        return list(dict.fromkeys(value))

    @staticmethod
    def _description(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_LENGTH or "\x00" in value:
            raise ParameterInvalid(
                f"description must be a string of at most {MAX_DESCRIPTION_LENGTH} characters, "
                "or null.",
                param="description",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ParameterInvalid(
                "description must not contain unpaired surrogates.", param="description"
            ) from None
        return value

    def _changes(self, payload: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        allowed = {"url", "enabled_events", "description"} | (set() if creating else {"disabled"})
        for key in payload:
            if key not in allowed and key not in _READ_ONLY:
                raise ParameterUnknown(f"Received unknown parameter: {key}.", param=key)
        if creating:
            for key in ("url", "enabled_events"):
                if key not in payload:
                    raise ParameterMissing(f"Missing required parameter: {key}.", param=key)
        changes: dict[str, Any] = {}
        if "url" in payload:
            changes["url"] = self._url(payload["url"])
        if "enabled_events" in payload:
            changes["enabled_events"] = self._enabled_events(payload["enabled_events"])
        if "description" in payload:
            changes["description"] = self._description(payload["description"])
        if "disabled" in payload:
            if not isinstance(payload["disabled"], bool):
                raise ParameterInvalid("disabled must be true or false.", param="disabled")
            changes["disabled"] = payload["disabled"]
        return changes

    async def _found(self, request: ApiRequest) -> StoredEndpoint:
        tenant = request.principal.tenant
        endpoint = await self.store.retrieve(request.executor, tenant, request.object_id)
        if endpoint is None:
            raise self._missing(request.object_id)
        return endpoint

    @staticmethod
    def _missing(endpoint_id: str) -> ResourceMissing:
        return ResourceMissing(f"No such webhook endpoint: '{endpoint_id}'", param="id")

    # --- operations --------------------------------------------------------------------------

    async def create(self, request: ApiRequest) -> Reply:
        """A new endpoint, enabled: 201 with its signing secret (shown only this once)."""
        reject_query(request)
        changes = self._changes(json_object(request), creating=True)
        endpoint = await self.store.create(
            request.executor,
            request.principal.tenant,
            url=changes["url"],
            description=changes.get("description"),
            enabled_events=changes["enabled_events"],
            secret=new_secret(),
            now_ms=now_ms(),
        )
        body = encode(webhook_endpoint(endpoint, with_secret=True))
        return Reply(201, body, (("location", f"{self.path}/{endpoint.id}"),))

    async def retrieve(self, request: ApiRequest) -> Reply:
        """One endpoint (without its secret)."""
        reject_query(request)
        return Reply(200, encode(webhook_endpoint(await self._found(request))))

    async def update(self, request: ApiRequest) -> Reply:
        """Change the URL, the event types, the description, or disable/enable it."""
        reject_query(request)
        changes = self._changes(json_object(request), creating=False)
        tenant = request.principal.tenant
        endpoint = await self.store.update(
            request.executor, tenant, request.object_id, changes, now_ms()
        )
        if endpoint is None:
            raise self._missing(request.object_id)
        return Reply(200, encode(webhook_endpoint(endpoint)))

    async def delete(self, request: ApiRequest) -> Reply:
        """Delete the endpoint; what it was still owed is not sent."""
        reject_query(request)
        tenant = request.principal.tenant
        if not await self.store.delete(request.executor, tenant, request.object_id):
            raise self._missing(request.object_id)
        return Reply(200, deleted(request.object_id))

    async def list(self, request: ApiRequest) -> Reply:
        """A page of endpoints, newest first."""

        def render(found: Page[StoredEndpoint]) -> bytes:
            return page([webhook_endpoint(e) for e in found.items], found.total, found.has_more)

        noun = "webhook endpoint"
        return await list_reply(request, self.list_parser, self.store.list, render, noun)

    async def rotate_secret(self, request: ApiRequest) -> Reply:
        """A new signing secret, returned once; the old one signs too for 24 hours."""
        reject_query(request)
        if request.body.strip():
            for key in json_object(request):
                raise ParameterUnknown(f"Received unknown parameter: {key}.", param=key)
        current = await self._found(request)
        now = now_ms()
        changes = {
            "secret": new_secret(),
            "previous_secret": current.secret,
            "previous_secret_expires_at": now + ROTATION_OVERLAP_MS,
        }
        tenant = request.principal.tenant
        endpoint = await self.store.update(
            request.executor, tenant, request.object_id, changes, now
        )
        if endpoint is None:
            raise self._missing(request.object_id)
        return Reply(200, encode(webhook_endpoint(endpoint, with_secret=True)))

    async def attempts(self, request: ApiRequest) -> Reply:
        """A page of the endpoint's delivery attempts, newest first."""
        endpoint = await self._found(request)

        async def fetch(db: Executor, tenant: Tenant, query: ListQuery) -> Page[StoredAttempt]:
            return await self.deliveries.list_attempts(db, tenant, endpoint.id, query)

        def render(found: Page[StoredAttempt]) -> bytes:
            return page([webhook_attempt(a) for a in found.items], found.total, found.has_more)

        return await list_reply(request, self.list_parser, fetch, render, "attempt")
