"""The client's namespaces: ``client.appointments``, ``client.events``, … one per API path.

Each namespace builds :class:`~overplane.client.calls.Call` objects in one shared base class
(the ``…Calls`` classes), and a sync and an async subclass only send them: the sync method is
``return self._client.send(call)``, the async one ``return await self._client.send(call)``.
``OPERATIONS`` maps each (HTTP method, path below the collection) the namespace serves to its
method, which ``tests/test_client.py`` checks against every operation of ``/openapi.json``.

A resource's namespace works for any declared resource (``**fields``); the generated
subclasses in ``client/resources.py`` add typed signatures for the shipped ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypedDict, TypeVar
from urllib.parse import quote

from overplane.client.calls import NOT_GIVEN, Call, NotGiven, given, list_params, new_call
from overplane.client.objects import (
    APIObject,
    AsyncPage,
    CalendarFeed,
    Deleted,
    Event,
    ListRequest,
    Page,
    Redelivered,
    WebhookAttempt,
    WebhookEndpoint,
)

T = TypeVar("T", bound=APIObject)
R = TypeVar("R")
#: Operations of a collection and of its objects: (HTTP method, path suffix) -> method name.
Operations = Mapping[tuple[str, str], str]
#: A range filter's value: ``{"gte": "2024-01-15T00:00:00Z", "lt": datetime(...)}``.
RangeBounds = Mapping[str, str | datetime]


class Range(TypedDict, total=False):
    """A range filter: ``created_at={"gte": "2024-01-15T00:00:00Z"}``; a datetime must be
    timezone-aware."""

    gt: str | datetime
    gte: str | datetime
    lt: str | datetime
    lte: str | datetime


class IsNull(TypedDict, total=False):
    """``party={"null": True}``: objects without a value (False: with one)."""

    null: bool


class RangeOrNull(Range, IsNull, total=False):
    """A field with range filters takes both kinds of operators."""


class Sender(Protocol):
    """What a sync namespace needs of its client."""

    def send(self, call: Call[R]) -> R: ...

    def list_page(self, request: ListRequest, cls: type[T]) -> Page[T]: ...


class AsyncSender(Protocol):
    """What an async namespace needs of its client."""

    async def send(self, call: Call[R]) -> R: ...

    async def list_page(self, request: ListRequest, cls: type[T]) -> AsyncPage[T]: ...


def object_path(collection: str, object_id: str, action: str = "") -> str:
    """An object's path; the id is quoted, so no id can reach another path."""
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"an id must be a non-empty string, not {object_id!r}")
    path = f"{collection}/{quote(object_id, safe='')}"
    return f"{path}/{action}" if action else path


def list_request(
    path: str,
    limit: int | None,
    offset: int | None,
    starting_after: str | None,
    ending_before: str | None,
    filters: Mapping[str, Any],
) -> ListRequest:
    """The first page's request of a list (see :func:`~overplane.client.calls.list_params`)."""
    params = list_params(limit, offset, starting_after, ending_before, filters)
    return ListRequest(path, params, backwards=ending_before is not None)


# --- resources (derived from the declarations) ------------------------------------------------

RESOURCE_OPERATIONS: Operations = {
    ("GET", ""): "list",
    ("POST", ""): "create",
    ("GET", "/{id}"): "retrieve",
    ("PATCH", "/{id}"): "update",
    ("DELETE", "/{id}"): "delete",
}


class ResourceCalls(Generic[T]):
    """The calls of one declared resource's five operations."""

    OPERATIONS: ClassVar[Operations] = RESOURCE_OPERATIONS

    def __init__(self, path: str, cls: type[T]) -> None:
        #: The collection path, e.g. ``/api/crm/appointment``.
        self.path = path
        #: The class of its objects.
        self.object_class = cls

    def _parse(self, data: Any) -> T:
        return self.object_class.from_json(data)

    def _create_call(self, fields: Mapping[str, Any], idempotency_key: str | None) -> Call[T]:
        payload = given(fields)
        return new_call(
            "POST", self.path, self._parse, payload=payload, idempotency_key=idempotency_key
        )

    def _retrieve_call(self, object_id: str) -> Call[T]:
        return new_call("GET", object_path(self.path, object_id), self._parse)

    def _update_call(
        self,
        object_id: str,
        fields: Mapping[str, Any],
        if_match: str | None,
        idempotency_key: str | None,
    ) -> Call[T]:
        return new_call(
            "PATCH",
            object_path(self.path, object_id),
            self._parse,
            payload=given(fields),
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    def _delete_call(
        self, object_id: str, if_match: str | None, idempotency_key: str | None
    ) -> Call[Deleted]:
        return new_call(
            "DELETE",
            object_path(self.path, object_id),
            Deleted.from_json,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )


class Resources(ResourceCalls[T]):
    """A declared resource's operations (sync): ``client.appointments.create(...)``."""

    def __init__(self, client: Sender, path: str, cls: type[T]) -> None:
        super().__init__(path, cls)
        self._client = client

    def create(self, *, idempotency_key: str | None = None, **fields: Any) -> T:
        """Create an object from ``fields`` (None sends null). Sent with ``idempotency_key``,
        or a new one, the same on every retry, so a retry never creates a second object."""
        return self._client.send(self._create_call(fields, idempotency_key))

    def retrieve(self, id: str, /) -> T:
        """The object with this id (:class:`NotFoundError` if there is none)."""
        return self._client.send(self._retrieve_call(id))

    def update(
        self,
        id: str,
        /,
        *,
        if_match: str | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> T:
        """Set ``fields`` (None clears one; fields not given stay); with ``if_match`` (an ETag,
        ``'"<version>"'``) only if the object has not changed since."""
        return self._client.send(self._update_call(id, fields, if_match, idempotency_key))

    def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the object for good."""
        return self._client.send(self._delete_call(id, if_match, idempotency_key))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        **filters: Any,
    ) -> Page[T]:
        """A page of objects, newest first. Filters: ``status="draft"`` (equality),
        ``party={"null": True}``, ``scheduled_time={"gte": "2024-01-15T00:00:00Z"}``;
        ``.auto_paging_iter()`` walks them all."""
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return self._client.list_page(request, self.object_class)


class AsyncResources(ResourceCalls[T]):
    """A declared resource's operations (async): ``await client.appointments.create(...)``."""

    def __init__(self, client: AsyncSender, path: str, cls: type[T]) -> None:
        super().__init__(path, cls)
        self._client = client

    async def create(self, *, idempotency_key: str | None = None, **fields: Any) -> T:
        """See :meth:`Resources.create`."""
        return await self._client.send(self._create_call(fields, idempotency_key))

    async def retrieve(self, id: str, /) -> T:
        """See :meth:`Resources.retrieve`."""
        return await self._client.send(self._retrieve_call(id))

    async def update(
        self,
        id: str,
        /,
        *,
        if_match: str | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> T:
        """See :meth:`Resources.update`."""
        return await self._client.send(self._update_call(id, fields, if_match, idempotency_key))

    async def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """See :meth:`Resources.delete`."""
        return await self._client.send(self._delete_call(id, if_match, idempotency_key))

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        **filters: Any,
    ) -> AsyncPage[T]:
        """See :meth:`Resources.list`; ``async for obj in page.auto_paging_iter()``."""
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return await self._client.list_page(request, self.object_class)


# --- events -----------------------------------------------------------------------------------


class EventCalls:
    """The calls of ``/api/events``."""

    path = "/api/events"
    OPERATIONS: ClassVar[Operations] = {
        ("GET", ""): "list",
        ("GET", "/{id}"): "retrieve",
        ("POST", "/{id}/redeliver"): "redeliver",
    }

    def _list_request(
        self,
        limit: int | None,
        offset: int | None,
        starting_after: str | None,
        ending_before: str | None,
        type: str | None,
        created_at: RangeBounds | None,
    ) -> ListRequest:
        filters = {"type": type, "created_at": created_at}
        return list_request(self.path, limit, offset, starting_after, ending_before, filters)

    def _retrieve_call(self, event_id: str) -> Call[Event]:
        return new_call("GET", object_path(self.path, event_id), Event.from_json)

    def _redeliver_call(
        self, event_id: str, endpoint: str | NotGiven, idempotency_key: str | None
    ) -> Call[Redelivered]:
        return new_call(
            "POST",
            object_path(self.path, event_id, "redeliver"),
            Redelivered.from_json,
            payload=given({"endpoint": endpoint}),
            idempotency_key=idempotency_key,
        )


class Events(EventCalls):
    """``client.events``: every accepted create, update and delete, newest first."""

    def __init__(self, client: Sender) -> None:
        self._client = client

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        type: str | None = None,
        created_at: RangeBounds | None = None,
    ) -> Page[Event]:
        """A page of events; ``type="appointment.*"``, ``created_at={"gte": …}``."""
        request = self._list_request(limit, offset, starting_after, ending_before, type, created_at)
        return self._client.list_page(request, Event)

    def retrieve(self, id: str, /) -> Event:
        """One event."""
        return self._client.send(self._retrieve_call(id))

    def redeliver(
        self,
        id: str,
        /,
        *,
        endpoint: str | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Redelivered:
        """Send the event again now: to ``endpoint`` (an id), or to every enabled endpoint
        subscribed to its type."""
        return self._client.send(self._redeliver_call(id, endpoint, idempotency_key))


class AsyncEvents(EventCalls):
    """``client.events`` of :class:`~overplane.client.AsyncClient`."""

    def __init__(self, client: AsyncSender) -> None:
        self._client = client

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        type: str | None = None,
        created_at: RangeBounds | None = None,
    ) -> AsyncPage[Event]:
        """See :meth:`Events.list`."""
        request = self._list_request(limit, offset, starting_after, ending_before, type, created_at)
        return await self._client.list_page(request, Event)

    async def retrieve(self, id: str, /) -> Event:
        """See :meth:`Events.retrieve`."""
        return await self._client.send(self._retrieve_call(id))

    async def redeliver(
        self,
        id: str,
        /,
        *,
        endpoint: str | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Redelivered:
        """See :meth:`Events.redeliver`."""
        return await self._client.send(self._redeliver_call(id, endpoint, idempotency_key))


# --- webhook endpoints ------------------------------------------------------------------------


class WebhookEndpointCalls:
    """The calls of ``/api/webhook-endpoints``."""

    path = "/api/webhook-endpoints"
    OPERATIONS: ClassVar[Operations] = {
        **RESOURCE_OPERATIONS,
        ("POST", "/{id}/rotate-secret"): "rotate_secret",
        ("GET", "/{id}/attempts"): "attempts",
    }

    def _create_call(
        self,
        url: str,
        enabled_events: list[str],
        description: str | NotGiven | None,
        idempotency_key: str | None,
    ) -> Call[WebhookEndpoint]:
        payload = given({"url": url, "enabled_events": enabled_events, "description": description})
        return new_call(
            "POST",
            self.path,
            WebhookEndpoint.from_json,
            payload=payload,
            idempotency_key=idempotency_key,
        )

    def _retrieve_call(self, endpoint_id: str) -> Call[WebhookEndpoint]:
        return new_call("GET", object_path(self.path, endpoint_id), WebhookEndpoint.from_json)

    def _update_call(
        self, endpoint_id: str, fields: Mapping[str, Any], idempotency_key: str | None
    ) -> Call[WebhookEndpoint]:
        return new_call(
            "PATCH",
            object_path(self.path, endpoint_id),
            WebhookEndpoint.from_json,
            payload=given(fields),
            idempotency_key=idempotency_key,
        )

    def _delete_call(self, endpoint_id: str, idempotency_key: str | None) -> Call[Deleted]:
        path = object_path(self.path, endpoint_id)
        return new_call("DELETE", path, Deleted.from_json, idempotency_key=idempotency_key)

    def _rotate_call(self, endpoint_id: str, idempotency_key: str | None) -> Call[WebhookEndpoint]:
        return new_call(
            "POST",
            object_path(self.path, endpoint_id, "rotate-secret"),
            WebhookEndpoint.from_json,
            idempotency_key=idempotency_key,
        )

    def _list_request(
        self,
        path: str,
        limit: int | None,
        offset: int | None,
        starting_after: str | None,
        ending_before: str | None,
    ) -> ListRequest:
        return list_request(path, limit, offset, starting_after, ending_before, {})


class WebhookEndpoints(WebhookEndpointCalls):
    """``client.webhook_endpoints``: where events are sent, signed."""

    def __init__(self, client: Sender) -> None:
        self._client = client

    def create(
        self,
        *,
        url: str,
        enabled_events: list[str],
        description: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        """A new endpoint; the result's ``secret`` (``whsec_…``) is shown only this once."""
        call = self._create_call(url, enabled_events, description, idempotency_key)
        return self._client.send(call)

    def retrieve(self, id: str, /) -> WebhookEndpoint:
        """One endpoint (without its secret)."""
        return self._client.send(self._retrieve_call(id))

    def update(
        self,
        id: str,
        /,
        *,
        url: str | NotGiven = NOT_GIVEN,
        enabled_events: list[str] | NotGiven = NOT_GIVEN,
        description: str | NotGiven | None = NOT_GIVEN,
        disabled: bool | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        """Change what is given; ``disabled=True`` stops deliveries to it."""
        fields = {
            "url": url,
            "enabled_events": enabled_events,
            "description": description,
            "disabled": disabled,
        }
        return self._client.send(self._update_call(id, fields, idempotency_key))

    def delete(self, id: str, /, *, idempotency_key: str | None = None) -> Deleted:
        """Delete the endpoint."""
        return self._client.send(self._delete_call(id, idempotency_key))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[WebhookEndpoint]:
        """A page of endpoints, newest first."""
        request = self._list_request(self.path, limit, offset, starting_after, ending_before)
        return self._client.list_page(request, WebhookEndpoint)

    def rotate_secret(self, id: str, /, *, idempotency_key: str | None = None) -> WebhookEndpoint:
        """A new signing secret (in the result, once); the old one signs too for 24 hours."""
        return self._client.send(self._rotate_call(id, idempotency_key))

    def attempts(
        self,
        id: str,
        /,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[WebhookAttempt]:
        """A page of the endpoint's delivery attempts, newest first."""
        path = object_path(self.path, id, "attempts")
        request = self._list_request(path, limit, offset, starting_after, ending_before)
        return self._client.list_page(request, WebhookAttempt)


class AsyncWebhookEndpoints(WebhookEndpointCalls):
    """``client.webhook_endpoints`` of :class:`~overplane.client.AsyncClient`."""

    def __init__(self, client: AsyncSender) -> None:
        self._client = client

    async def create(
        self,
        *,
        url: str,
        enabled_events: list[str],
        description: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        """See :meth:`WebhookEndpoints.create`."""
        call = self._create_call(url, enabled_events, description, idempotency_key)
        return await self._client.send(call)

    async def retrieve(self, id: str, /) -> WebhookEndpoint:
        """See :meth:`WebhookEndpoints.retrieve`."""
        return await self._client.send(self._retrieve_call(id))

    async def update(
        self,
        id: str,
        /,
        *,
        url: str | NotGiven = NOT_GIVEN,
        enabled_events: list[str] | NotGiven = NOT_GIVEN,
        description: str | NotGiven | None = NOT_GIVEN,
        disabled: bool | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        """See :meth:`WebhookEndpoints.update`."""
        fields = {
            "url": url,
            "enabled_events": enabled_events,
            "description": description,
            "disabled": disabled,
        }
        return await self._client.send(self._update_call(id, fields, idempotency_key))

    async def delete(self, id: str, /, *, idempotency_key: str | None = None) -> Deleted:
        """See :meth:`WebhookEndpoints.delete`."""
        return await self._client.send(self._delete_call(id, idempotency_key))

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPage[WebhookEndpoint]:
        """See :meth:`WebhookEndpoints.list`."""
        request = self._list_request(self.path, limit, offset, starting_after, ending_before)
        return await self._client.list_page(request, WebhookEndpoint)

    async def rotate_secret(
        self, id: str, /, *, idempotency_key: str | None = None
    ) -> WebhookEndpoint:
        """See :meth:`WebhookEndpoints.rotate_secret`."""
        return await self._client.send(self._rotate_call(id, idempotency_key))

    async def attempts(
        self,
        id: str,
        /,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPage[WebhookAttempt]:
        """See :meth:`WebhookEndpoints.attempts`."""
        path = object_path(self.path, id, "attempts")
        request = self._list_request(path, limit, offset, starting_after, ending_before)
        return await self._client.list_page(request, WebhookAttempt)


# --- calendar feeds ---------------------------------------------------------------------------


class CalendarFeedCalls:
    """The calls of ``/api/crm/calendar-feeds``."""

    path = "/api/crm/calendar-feeds"
    OPERATIONS: ClassVar[Operations] = {
        ("GET", ""): "list",
        ("POST", ""): "create",
        ("GET", "/{id}"): "retrieve",
        ("DELETE", "/{id}"): "delete",
    }

    def _create_call(
        self, description: str | NotGiven | None, idempotency_key: str | None
    ) -> Call[CalendarFeed]:
        return new_call(
            "POST",
            self.path,
            CalendarFeed.from_json,
            payload=given({"description": description}),
            idempotency_key=idempotency_key,
        )

    def _retrieve_call(self, feed_id: str) -> Call[CalendarFeed]:
        return new_call("GET", object_path(self.path, feed_id), CalendarFeed.from_json)

    def _delete_call(self, feed_id: str, idempotency_key: str | None) -> Call[Deleted]:
        path = object_path(self.path, feed_id)
        return new_call("DELETE", path, Deleted.from_json, idempotency_key=idempotency_key)

    def _list_request(
        self,
        limit: int | None,
        offset: int | None,
        starting_after: str | None,
        ending_before: str | None,
    ) -> ListRequest:
        return list_request(self.path, limit, offset, starting_after, ending_before, {})


class CalendarFeeds(CalendarFeedCalls):
    """``client.calendar_feeds``: iCalendar feeds of appointments for calendar apps."""

    def __init__(self, client: Sender) -> None:
        self._client = client

    def create(
        self,
        *,
        description: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> CalendarFeed:
        """A new feed; the result's ``token`` and ``url`` are shown only this once."""
        return self._client.send(self._create_call(description, idempotency_key))

    def retrieve(self, id: str, /) -> CalendarFeed:
        """One feed (without its token)."""
        return self._client.send(self._retrieve_call(id))

    def delete(self, id: str, /, *, idempotency_key: str | None = None) -> Deleted:
        """Delete the feed: its URL answers 404 from now on."""
        return self._client.send(self._delete_call(id, idempotency_key))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> Page[CalendarFeed]:
        """A page of feeds, newest first."""
        request = self._list_request(limit, offset, starting_after, ending_before)
        return self._client.list_page(request, CalendarFeed)


class AsyncCalendarFeeds(CalendarFeedCalls):
    """``client.calendar_feeds`` of :class:`~overplane.client.AsyncClient`."""

    def __init__(self, client: AsyncSender) -> None:
        self._client = client

    async def create(
        self,
        *,
        description: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> CalendarFeed:
        """See :meth:`CalendarFeeds.create`."""
        return await self._client.send(self._create_call(description, idempotency_key))

    async def retrieve(self, id: str, /) -> CalendarFeed:
        """See :meth:`CalendarFeeds.retrieve`."""
        return await self._client.send(self._retrieve_call(id))

    async def delete(self, id: str, /, *, idempotency_key: str | None = None) -> Deleted:
        """See :meth:`CalendarFeeds.delete`."""
        return await self._client.send(self._delete_call(id, idempotency_key))

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPage[CalendarFeed]:
        """See :meth:`CalendarFeeds.list`."""
        request = self._list_request(limit, offset, starting_after, ending_before)
        return await self._client.list_page(request, CalendarFeed)
