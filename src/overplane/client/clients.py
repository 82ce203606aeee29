"""``Client`` and ``AsyncClient``: the API's operations as Python calls, over httpx.

Both build the same :class:`~overplane.client.calls.Call` objects and run the same
:func:`~overplane.client.calls.exchange` (retries, errors, parsing); they differ only in how
they wait: a blocking send and ``time.sleep``, or ``await``. Their namespaces are derived from
the declarations: one per resource (``client.appointments``, ``client.party_links``, and any
resource a deployment declares), plus ``client.events``, ``client.webhook_endpoints`` and
``client.calendar_feeds``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from overplane import __version__
from overplane.client.calls import Call, Outcome, RetryPolicy, Wait, exchange
from overplane.client.errors import OverplaneError, Response
from overplane.client.namespaces import (
    AsyncCalendarFeeds,
    AsyncEvents,
    AsyncResources,
    AsyncWebhookEndpoints,
    CalendarFeeds,
    Events,
    Resources,
    WebhookEndpoints,
)
from overplane.client.objects import (
    APIObject,
    AsyncPage,
    Event,
    ListRequest,
    Page,
    Params,
    async_page_parser,
    page_parser,
)
from overplane.client.resources import GENERATED, AsyncResourceNamespaces, ResourceNamespaces
from overplane.declarations import RESOURCES, Resource

T = TypeVar("T", bound=APIObject)
R = TypeVar("R")
Q = TypeVar("Q")

API_KEY_ENV = "OVERPLANE_API_KEY"
BASE_URL_ENV = "OVERPLANE_BASE_URL"
#: Where ``scripts/run.sh`` serves.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: Seconds for each attempt (connect, read, write, pool). Generous: a list of 100 objects on
#: a busy server is well under it, while a dead server is noticed well within a minute.
DEFAULT_TIMEOUT = 30.0
#: Three attempts in all. Enough to ride out a dropped connection, a restart or a short
#: lock-out (each wait doubles: about 0.5 s then 1 s, or what Retry-After says), and small
#: enough that an outage surfaces as an error within seconds rather than hanging a caller.
DEFAULT_MAX_RETRIES = 2


def _attribute(resource: Resource) -> str:
    return resource.plural.replace(" ", "_").replace("-", "_")


def _object_classes() -> dict[str, type[APIObject]]:
    """Each declared resource's object class: generated, or made here for a resource the
    generated module does not know (declared by a deployment)."""
    classes: dict[str, type[APIObject]] = {}
    for resource in RESOURCES:
        generated = GENERATED.get(resource.path)
        if generated is not None:
            classes[resource.path] = generated[2]
        else:
            name = resource.title.replace(" ", "")
            attributes = {
                "__slots__": (),
                "OBJECT": resource.event_name,
                "__doc__": resource.description,
            }
            classes[resource.path] = type(name, (APIObject,), attributes)
    return classes


OBJECT_CLASSES = _object_classes()
# Events carry their resource's objects: data.object becomes an Appointment, ….
Event.RESOURCE_CLASSES.update({r.event_name: OBJECT_CLASSES[r.path] for r in RESOURCES})


class Settings:
    """What both clients are configured with, resolved from arguments and environment."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        headers: Mapping[str, str] | None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise OverplaneError(
                f"No API key: pass api_key=... or set {API_KEY_ENV} (a secret key, sk_test_… "
                "or sk_live_…)."
            )
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.api_key = key
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.policy = RetryPolicy(max_retries=max_retries)
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": f"overplane-python/{__version__}",
            **(headers or {}),
        }

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        """The httpx request of ``call``, built once and sent as is on every attempt."""
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=list(call.params) or None,
            content=call.body,
            headers={**self.headers, **dict(call.headers)},
            timeout=self.timeout,
        )


async def converse(
    call: Call[R], request: Q, send: Callable[[Q], Awaitable[Response]], policy: RetryPolicy
) -> R:
    """Send ``call`` as ``request`` with ``send`` (which raises ``httpx.TransportError`` when
    no response came), retrying as ``policy`` says; the parsed result, or the typed error.
    :meth:`AsyncClient.send` sends with httpx, :class:`~overplane.client.bulk.BulkCreates`
    with its own bytes."""
    conversation = exchange(call, request, policy)
    step = next(conversation)
    try:
        while True:
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
                step = conversation.send(None)  # type: ignore[arg-type]
                continue
            try:
                outcome: Outcome = await send(step)
            except httpx.TransportError as exc:
                outcome = exc
            step = conversation.send(outcome)
    except StopIteration as done:
        result: R = done.value
        return result


class AsyncClosing:
    """``async with`` for what has connections to close: ``close()`` at the end."""

    async def close(self) -> None:
        """Close the connections."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class _ClientBase:
    """What both clients share: their settings, and one namespace per declared resource."""

    _settings: Settings

    def _add_resource_namespaces(self, side: int, untyped: type[Any]) -> None:
        """Set one namespace per declared resource: the generated class on ``side`` (0 sync,
        1 async), or ``untyped`` for a resource the generated module does not know."""
        for resource in RESOURCES:
            generated = GENERATED.get(resource.path)
            if generated:
                namespace: Any = (generated[1] if side else generated[0])(self)
            else:
                namespace = untyped(self, resource.path, OBJECT_CLASSES[resource.path])
            setattr(self, _attribute(resource), namespace)

    @property
    def base_url(self) -> str:
        """The API's URL."""
        return self._settings.base_url

    @property
    def max_retries(self) -> int:
        """How many times a failed call is retried (0: never)."""
        return self._settings.policy.max_retries


class Client(_ClientBase, ResourceNamespaces):
    """A synchronous client of the Overplane API.

    ``Client(api_key=None, base_url=None, *, timeout=30.0, max_retries=2, http_client=None)``:
    the key defaults to ``OVERPLANE_API_KEY``, the URL to ``OVERPLANE_BASE_URL`` (else
    ``http://127.0.0.1:8000``). ``http_client`` lends an ``httpx.Client`` of your own
    (proxies, TLS); the client then does not close it. Use as a context manager, or
    :meth:`close` it.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._settings = Settings(api_key, base_url, timeout, max_retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()
        self.events = Events(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.calendar_feeds = CalendarFeeds(self)
        self._add_resource_namespaces(0, Resources)

    def send(self, call: Call[R]) -> R:
        """Send ``call``, retrying as the policy says; its parsed result, or the typed error."""
        request = self._settings.request(self._http, call)
        conversation = exchange(call, request, self._settings.policy)
        step = next(conversation)
        try:
            while True:
                if isinstance(step, Wait):
                    time.sleep(step.seconds)
                    step = conversation.send(None)  # type: ignore[arg-type]
                    continue
                try:
                    outcome: Outcome = self._http.send(step)
                except httpx.TransportError as exc:
                    outcome = exc
                step = conversation.send(outcome)
        except StopIteration as done:
            result: R = done.value
            return result

    def list_page(self, request: ListRequest, cls: type[T]) -> Page[T]:
        """The page ``request`` asks for, able to fetch the ones after it."""

        def fetch(previous: ListRequest, params: Params) -> Page[T]:
            return self.list_page(ListRequest(previous.path, params, previous.backwards), cls)

        call = Call("GET", request.path, page_parser(cls, request, fetch), tuple(request.params))
        return self.send(call)

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` you lent)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"


class AsyncClient(AsyncClosing, _ClientBase, AsyncResourceNamespaces):
    """The asynchronous client: the same namespaces and arguments as :class:`Client`, each
    method a coroutine; lists give :class:`~overplane.client.objects.AsyncPage`
    (``async for obj in page.auto_paging_iter()``). ``http_client`` takes an
    ``httpx.AsyncClient``. Use ``async with``, or ``await client.close()``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = Settings(api_key, base_url, timeout, max_retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self.events = AsyncEvents(self)
        self.webhook_endpoints = AsyncWebhookEndpoints(self)
        self.calendar_feeds = AsyncCalendarFeeds(self)
        self._add_resource_namespaces(1, AsyncResources)

    async def send(self, call: Call[R]) -> R:
        """Send ``call``, retrying as the policy says; its parsed result, or the typed error."""
        request = self._settings.request(self._http, call)
        return await converse(call, request, self._http.send, self._settings.policy)

    async def list_page(self, request: ListRequest, cls: type[T]) -> AsyncPage[T]:
        """The page ``request`` asks for, able to fetch the ones after it."""

        async def fetch(previous: ListRequest, params: Params) -> AsyncPage[T]:
            following = ListRequest(previous.path, params, previous.backwards)
            return await self.list_page(following, cls)

        parse = async_page_parser(cls, request, fetch)
        return await self.send(Call("GET", request.path, parse, tuple(request.params)))

    async def close(self) -> None:
        """Close the connections (not those of an ``http_client`` you lent)."""
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
