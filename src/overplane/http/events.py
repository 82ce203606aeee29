"""``/api/events``: the tenant's events, one event, and sending one again to its endpoints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from overplane.clock import now_ms
from overplane.declarations import Resource
from overplane.http.errors import ParameterInvalid, ParameterUnknown, ResourceMissing
from overplane.http.messages import ApiRequest, Reply
from overplane.http.routes import Endpoint, json_object, list_reply, reject_query
from overplane.rendering import EventRenderer, encode
from overplane.storage.events import EventStore, StoredEvent
from overplane.storage.listing import Page
from overplane.storage.webhooks import DeliveryStore, EndpointStore
from overplane.validation.list_query import EventQueryParser


class EventEndpoint(Endpoint):
    """List and retrieve events; ``POST /api/events/{id}/redeliver`` sends one again now."""

    path = "/api/events"
    ACTIONS: ClassVar[Mapping[str, Mapping[str, str]]] = {"redeliver": {"POST": "redeliver"}}

    def __init__(self, resources: Iterable[Resource]) -> None:
        resources = tuple(resources)
        self.store = EventStore()
        self.endpoints = EndpointStore()
        self.deliveries = DeliveryStore()
        self.renderer = EventRenderer(resources)
        self.list_parser = EventQueryParser([t for r in resources for t in r.event_types])

    async def list(self, request: ApiRequest) -> Reply:
        """A page of events, filtered by type and time, paged like every list."""

        def render(page: Page[StoredEvent]) -> bytes:
            return self.renderer.page(page.items, page.total, page.has_more)

        return await list_reply(request, self.list_parser, self.store.list, render, "event")

    async def retrieve(self, request: ApiRequest) -> Reply:
        """One event."""
        reject_query(request)
        tenant = request.principal.tenant
        event = await self.store.retrieve(request.executor, tenant, request.object_id)
        if event is None:
            raise ResourceMissing(f"No such event: '{request.object_id}'", param="id")
        return Reply(200, self.renderer.event(event))

    async def redeliver(self, request: ApiRequest) -> Reply:
        """Send the event again now: to one endpoint (``{"endpoint": "we_…"}``), or to every
        enabled endpoint subscribed to its type. Earlier deliveries' outcomes do not matter."""
        reject_query(request)
        payload = json_object(request) if request.body.strip() else {}
        for key in payload:
            if key != "endpoint":
                raise ParameterUnknown(f"Received unknown parameter: {key}.", param=key)
        tenant, db = request.principal.tenant, request.executor
        event = await self.store.retrieve(db, tenant, request.object_id)
        if event is None:
            raise ResourceMissing(f"No such event: '{request.object_id}'", param="id")
        if "endpoint" in payload:
            wanted = payload["endpoint"]
            if not isinstance(wanted, str):
                raise ParameterInvalid(
                    "endpoint must be a webhook endpoint's id.", param="endpoint"
                )
            if await self.endpoints.retrieve(db, tenant, wanted) is None:
                raise ResourceMissing(f"No such webhook endpoint: '{wanted}'", param="endpoint")
            targets = [wanted]
        else:
            targets = await self.endpoints.subscribed(db, tenant, event.type)
        await self.deliveries.redeliver(db, tenant, event.id, targets, now_ms())
        return Reply(200, encode({"id": event.id, "redelivered_to": targets}))
