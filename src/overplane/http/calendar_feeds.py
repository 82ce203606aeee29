"""``/api/crm/calendar-feeds``: tokens for calendar apps to subscribe to appointments.

A calendar app cannot send an Authorization header, so a feed is reached by a long random
token in its URL (``GET /calendar/{token}.ics``, served by ``web/calendar.py``). Create
returns the token and that URL once (like a webhook endpoint's secret); retrieve and list
show the feed without them; delete revokes the token at once. A feed shows the appointments
of the account and mode of the key that created it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from overplane.clock import now_ms
from overplane.errors import ParameterInvalid, ParameterUnknown, ResourceMissing
from overplane.http.messages import ApiRequest, Reply
from overplane.http.routes import Endpoint, json_object, list_reply, reject_query
from overplane.rendering import calendar_feed, deleted, encode, page
from overplane.storage.calendar_feeds import FeedStore, StoredFeed
from overplane.storage.listing import Page
from overplane.validation.list_query import QueryParser

MAX_DESCRIPTION_LENGTH = 1000
#: Sent back from a fetched feed: ignored, like an object's read-only keys.
_READ_ONLY = frozenset({"id", "created_at"})


class CalendarFeedEndpoint(Endpoint):
    """Create, retrieve, list and delete calendar feeds."""

    path = "/api/crm/calendar-feeds"
    COLLECTION_METHODS: ClassVar[Mapping[str, str]] = {"GET": "list", "POST": "create"}
    OBJECT_METHODS: ClassVar[Mapping[str, str]] = {"GET": "retrieve", "DELETE": "delete"}

    def __init__(self) -> None:
        self.store = FeedStore()
        self.list_parser = QueryParser()

    @staticmethod
    def _description(payload: Mapping[str, object]) -> str | None:
        for key in payload:
            if key != "description" and key not in _READ_ONLY:
                raise ParameterUnknown(f"Received unknown parameter: {key}.", param=key)
        value = payload.get("description")
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

    @staticmethod
    def _missing(feed_id: str) -> ResourceMissing:
        return ResourceMissing(f"No such calendar feed: '{feed_id}'", param="id")

    async def create(self, request: ApiRequest) -> Reply:
        """A new feed: 201 with its token and URL (shown only this once). The body is
        optional (``{"description": …}``)."""
        reject_query(request)
        payload = json_object(request) if request.body.strip() else {}
        description = self._description(payload)
        feed, token = await self.store.create(
            request.executor, request.principal.tenant, description, now_ms()
        )
        body = encode(calendar_feed(feed, token))
        return Reply(201, body, (("location", f"{self.path}/{feed.id}"),))

    async def retrieve(self, request: ApiRequest) -> Reply:
        """One feed (without its token)."""
        reject_query(request)
        tenant = request.principal.tenant
        feed = await self.store.retrieve(request.executor, tenant, request.object_id)
        if feed is None:
            raise self._missing(request.object_id)
        return Reply(200, encode(calendar_feed(feed)))

    async def delete(self, request: ApiRequest) -> Reply:
        """Delete the feed: its URL answers 404 from now on."""
        reject_query(request)
        tenant = request.principal.tenant
        if not await self.store.delete(request.executor, tenant, request.object_id):
            raise self._missing(request.object_id)
        return Reply(200, deleted(request.object_id))

    async def list(self, request: ApiRequest) -> Reply:
        """A page of feeds, newest first."""

        def render(found: Page[StoredFeed]) -> bytes:
            return page([calendar_feed(f) for f in found.items], found.total, found.has_more)

        return await list_reply(request, self.list_parser, self.store.list, render, "calendar feed")
