"""What the API returns, as Python objects: attribute access, equality, a readable repr.

An :class:`APIObject` keeps every key the server sent, in order, including keys this client
does not know yet (a newer server's fields are kept, never fatal). Known keys are typed for
IDEs and mypy by the generated classes in ``client/resources.py``; anything else reads as
``Any``. ``obj["name"]`` works for every key, ``obj.to_dict()`` gives a plain copy, and a null
field is ``None``.

Pages (:class:`Page`, :class:`AsyncPage`) hold one page of a list and walk the rest with
cursors, one page in memory at a time.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "APIObject",
    "AsyncPage",
    "CalendarFeed",
    "Deleted",
    "Event",
    "Page",
    "Redelivered",
    "WebhookAttempt",
    "WebhookEndpoint",
    "async_page_parser",
    "construct",
    "page_parser",
]

T = TypeVar("T", bound="APIObject")
#: A list request's query parameters, in order.
Params = list[tuple[str, str]]


class APIObject:
    """One object of the API; read-only.

    Attributes are the JSON keys; nested JSON objects become :class:`APIObject` too. Two
    objects are equal when they are of the same class and hold the same values.
    """

    __slots__ = ("_values",)
    #: The object type, for the repr and for :func:`construct` (``appointment``, ``event``…).
    OBJECT: ClassVar[str] = "object"

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    @classmethod
    def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
        """An object of this class from a decoded JSON object (nested objects converted)."""
        return cls({key: _convert(value) for key, value in data.items()})

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not regular attributes: the object's keys.
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} object has no attribute {name!r}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only; use update()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, APIObject)
        same: bool = self._values == other._values
        return same

    __hash__ = None  # type: ignore[assignment]  # equal by value, and values may be lists

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self._values.items())
        return f"{type(self).__name__}({shown})"

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._values})

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the object (nested objects too), as the server sent it."""
        return {key: _plain(value) for key, value in self._values.items()}


def _convert(value: Any) -> Any:
    if isinstance(value, dict):
        return APIObject.from_json(value)
    if isinstance(value, list):
        return [_convert(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, APIObject):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class Deleted(APIObject):
    """The answer to a delete: ``id`` and ``deleted`` (always True)."""

    __slots__ = ()
    OBJECT = "deleted"
    id: str
    deleted: bool


class WebhookEndpoint(APIObject):
    """Where events are sent. ``secret`` is present only on create and on rotation."""

    __slots__ = ()
    OBJECT = "webhook_endpoint"
    id: str
    created_at: str
    updated_at: str
    url: str
    description: str | None
    enabled_events: list[str]
    disabled: bool
    secret: str


class CalendarFeed(APIObject):
    """An iCalendar feed of appointments. ``token`` and ``url`` are present only on create."""

    __slots__ = ()
    OBJECT = "calendar_feed"
    id: str
    created_at: str
    description: str | None
    token: str
    url: str


class WebhookAttempt(APIObject):
    """One delivery attempt of an event to an endpoint."""

    __slots__ = ()
    OBJECT = "webhook_attempt"
    id: str
    created_at: str
    event_id: str
    endpoint_id: str
    status_code: int | None
    error: str | None
    duration_ms: int
    next_retry_at: str | None


class Redelivered(APIObject):
    """The answer to a redelivery: the event and the endpoints it is sent to again."""

    __slots__ = ()
    OBJECT = "redelivered"
    id: str
    redelivered_to: list[str]


class Event(APIObject):
    """A recorded change: ``data.object`` is the object (of its resource's class) after it,
    ``data.previous_attributes`` (on ``….updated``) the changed fields' values before it."""

    __slots__ = ()
    OBJECT = "event"
    id: str
    type: str
    created_at: str
    data: APIObject
    request: APIObject

    #: Resource classes by event name (``party_link``), filled by the client's registry.
    RESOURCE_CLASSES: ClassVar[dict[str, builtins.type[APIObject]]] = {}

    @classmethod
    def from_json(cls: builtins.type[T], data: Mapping[str, Any]) -> T:
        values = {key: _convert(value) for key, value in data.items()}
        payload = data.get("data")
        resource_class = Event.RESOURCE_CLASSES.get(str(data.get("type", "")).rpartition(".")[0])
        if (
            resource_class is not None
            and isinstance(payload, dict)
            and isinstance(payload.get("object"), dict)
        ):
            inner = {key: _convert(value) for key, value in payload.items()}
            inner["object"] = resource_class.from_json(payload["object"])
            values["data"] = APIObject(inner)
        return cls(values)


def construct(cls: type[T], data: Any) -> T:
    """``data`` (decoded JSON) as an object of ``cls``; a non-object is a protocol error."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    return cls.from_json(data)


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListRequest:
    """A list request as sent: the path and its query parameters (without the cursor the walk
    replaces), so the next page can be asked for."""

    path: str
    params: Params
    #: Walking towards newer objects (the first page was asked with ``ending_before``).
    backwards: bool = False

    def next_params(self, cursor: str) -> Params:
        """The parameters of the page after the one ending at ``cursor`` (offset dropped: the
        API does not combine an offset with a cursor)."""
        dropped = {"offset", "starting_after", "ending_before"}
        kept = [(name, value) for name, value in self.params if name not in dropped]
        return [*kept, ("ending_before" if self.backwards else "starting_after", cursor)]


@dataclass(frozen=True, slots=True)
class PageBase(Generic[T]):
    """One page of a list: ``data``, ``has_more`` and ``total`` as the API sent them."""

    data: list[T]
    has_more: bool
    total: int
    request: ListRequest = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.data)

    def _walk_order(self) -> Sequence[T]:
        # Walking backwards (ending_before), pages come newest first but each one lies before
        # the last: yield each page reversed, so the walk is in one order (oldest to newest).
        return self.data[::-1] if self.request.backwards else self.data

    def _cursor(self) -> str | None:
        """The id the next page starts from, or None when this is the last page."""
        if not self.has_more or not self.data:
            return None
        edge = self.data[0] if self.request.backwards else self.data[-1]
        return str(edge["id"])


@dataclass(frozen=True, slots=True)
class Page(PageBase[T]):
    """A page of a list; :meth:`auto_paging_iter` walks every object from here on."""

    fetch: Callable[[ListRequest, Params], Page[T]] = field(
        default=lambda request, params: _no_fetch(), repr=False, compare=False
    )

    def __iter__(self) -> Iterator[T]:
        """The objects of this page only."""
        return iter(self.data)

    def next_page(self) -> Page[T] | None:
        """The next page (by cursor), or None when this is the last one."""
        cursor = self._cursor()
        if cursor is None:
            return None
        return self.fetch(self.request, self.request.next_params(cursor))

    def auto_paging_iter(self) -> Iterator[T]:
        """Every object of the list from this page on, fetching pages by cursor as needed;
        only one page is held at a time, so memory stays constant however long the list."""
        page: Page[T] | None = self
        while page is not None:
            yield from page._walk_order()
            page = page.next_page()


@dataclass(frozen=True, slots=True)
class AsyncPage(PageBase[T]):
    """A page of a list for :class:`~overplane.client.AsyncClient`: ``async for obj in
    page.auto_paging_iter()`` (or ``async for obj in page``) walks every object from here."""

    fetch: Callable[[ListRequest, Params], Awaitable[AsyncPage[T]]] = field(
        default=lambda request, params: _no_fetch(), repr=False, compare=False
    )

    async def next_page(self) -> AsyncPage[T] | None:
        """The next page (by cursor), or None when this is the last one."""
        cursor = self._cursor()
        if cursor is None:
            return None
        return await self.fetch(self.request, self.request.next_params(cursor))

    async def auto_paging_iter(self) -> AsyncIterator[T]:
        """Every object of the list from this page on, one page in memory at a time."""
        page: AsyncPage[T] | None = self
        while page is not None:
            for item in page._walk_order():
                yield item
            page = await page.next_page()

    def __aiter__(self) -> AsyncIterator[T]:
        return self.auto_paging_iter()


def _no_fetch() -> Any:
    raise RuntimeError("this page was not made by a client and cannot fetch more")


def page_parser(
    cls: type[T], request: ListRequest, fetch: Callable[[ListRequest, Params], Any]
) -> Callable[[Any], Page[T]]:
    """How to read a list's JSON into a :class:`Page` of ``cls`` that fetches more with
    ``fetch``."""

    def parse(data: Any) -> Page[T]:
        items, has_more, total = _envelope(data)
        return Page([construct(cls, item) for item in items], has_more, total, request, fetch)

    return parse


def async_page_parser(
    cls: type[T], request: ListRequest, fetch: Callable[[ListRequest, Params], Any]
) -> Callable[[Any], AsyncPage[T]]:
    """:func:`page_parser` for :class:`AsyncPage`."""

    def parse(data: Any) -> AsyncPage[T]:
        items, has_more, total = _envelope(data)
        objects = [construct(cls, item) for item in items]
        return AsyncPage(objects, has_more, total, request, fetch)

    return parse


def _envelope(data: Any) -> tuple[list[Any], bool, int]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise TypeError("expected a list envelope {data, has_more, total}")
    return data["data"], bool(data.get("has_more")), int(data.get("total", 0))
