"""Objects and lists as the JSON bytes the contract shows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from overplane.declarations import READ_ONLY_KEYS, Resource
from overplane.rfc3339 import format_ms
from overplane.storage.calendar_feeds import StoredFeed
from overplane.storage.events import StoredEvent
from overplane.storage.objects import StoredObject
from overplane.storage.webhooks import StoredAttempt, StoredEndpoint

_encode = msgspec.json.Encoder().encode


class ObjectRenderer:
    """Turns a stored row of one resource into the object's JSON, keys in contract order.

    Each resource gets a msgspec Struct type built from its declaration: encoding a Struct
    skips the per-object dict and its key hashing (a 20-object page renders about a third
    faster than from dicts, measured in docs/performance.md).
    """

    def __init__(self, resource: Resource) -> None:
        self.keys = (*READ_ONLY_KEYS, *(f.name for f in resource.fields))
        self.struct = msgspec.defstruct(
            resource.title.replace(" ", ""), [(key, str | None) for key in self.keys], gc=False
        )
        self.page_struct = msgspec.defstruct(
            resource.title.replace(" ", "") + "List",
            [("data", list[self.struct]), ("has_more", bool), ("total", int)],  # type: ignore[name-defined]
            gc=False,
        )

    def as_struct(self, stored: StoredObject) -> msgspec.Struct:
        """The object: id, created_at, updated_at, then every field (None if unset)."""
        return self.struct(
            stored.id, format_ms(stored.created_at), format_ms(stored.updated_at), *stored.values
        )

    def object(self, stored: StoredObject) -> bytes:
        """One object as JSON bytes."""
        return _encode(self.as_struct(stored))

    def page(self, objects: Sequence[StoredObject], total: int, has_more: bool) -> bytes:
        """The list envelope: ``{"data": [...], "has_more": …, "total": …}``."""
        page = [self.as_struct(stored) for stored in objects]
        return _encode(self.page_struct(page, has_more, total))


class EventRenderer:
    """Turns stored events into the event objects of the API.

    ``data.object`` is the object as a retrieve returned it at the time of the event (its
    stored values, rendered like any object; a field declared since then is left out, one
    no longer declared is kept). ``data.previous_attributes``, on ``….updated`` events only
    (as Stripe does), holds the fields the update changed, with their values before it.
    """

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.fields = {r.event_name: tuple(f.name for f in r.fields) for r in resources}

    def as_dict(self, event: StoredEvent) -> dict[str, Any]:
        """The event object, keys in the documented order."""
        kind, _, action = event.type.rpartition(".")
        fields = self.fields.get(kind, ())
        stored: dict[str, Any] = msgspec.json.decode(event.object_json)
        shown: dict[str, Any] = {key: stored.pop(key, None) for key in READ_ONLY_KEYS}
        for key in ("created_at", "updated_at"):
            if isinstance(shown[key], int):
                shown[key] = format_ms(shown[key])
        shown |= {name: stored.pop(name) for name in fields if name in stored}
        shown |= stored
        data: dict[str, Any] = {"object": shown}
        if action == "updated":
            before: dict[str, Any] = msgspec.json.decode(event.previous_json or "{}")
            data["previous_attributes"] = {
                name: value
                for name, value in before.items()
                if name in shown and shown[name] != value
            }
        return {
            "id": event.id,
            "type": event.type,
            "created_at": format_ms(event.created_at),
            "data": data,
            "request": {"id": event.request_id, "idempotency_key": event.idempotency_key},
        }

    def event(self, event: StoredEvent) -> bytes:
        """One event as JSON bytes."""
        return _encode(self.as_dict(event))

    def page(self, events: Sequence[StoredEvent], total: int, has_more: bool) -> bytes:
        """The list envelope of events."""
        data = [self.as_dict(event) for event in events]
        return _encode({"data": data, "has_more": has_more, "total": total})


def webhook_endpoint(endpoint: StoredEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """A webhook endpoint as the API shows it; its signing secret only when it is made (on
    create and on rotation), never again."""
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "created_at": format_ms(endpoint.created_at),
        "updated_at": format_ms(endpoint.updated_at),
        "url": endpoint.url,
        "description": endpoint.description,
        "enabled_events": list(endpoint.enabled_events),
        "disabled": endpoint.disabled,
    }
    if with_secret:
        shown["secret"] = endpoint.secret
    return shown


def webhook_attempt(attempt: StoredAttempt) -> dict[str, Any]:
    """One delivery attempt as the attempt log shows it."""
    return {
        "id": attempt.id,
        "created_at": format_ms(attempt.created_at),
        "event_id": attempt.event_id,
        "endpoint_id": attempt.endpoint_id,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "next_retry_at": None
        if attempt.next_retry_at is None
        else format_ms(attempt.next_retry_at),
    }


def page(items: list[dict[str, Any]], total: int, has_more: bool) -> bytes:
    """The list envelope around already rendered items."""
    return _encode({"data": items, "has_more": has_more, "total": total})


def deleted(object_id: str) -> bytes:
    """The body of a successful delete."""
    return _encode({"id": object_id, "deleted": True})


def encode(value: object) -> bytes:
    """Any JSON-able value as bytes."""
    return _encode(value)


def calendar_feed(feed: StoredFeed, token: str | None = None) -> dict[str, Any]:
    """A calendar feed as the API shows it; its token and URL only when it is made."""
    shown: dict[str, Any] = {
        "id": feed.id,
        "created_at": format_ms(feed.created_at),
        "description": feed.description,
    }
    if token is not None:
        shown["token"] = token
        shown["url"] = f"/calendar/{token}.ics"
    return shown
