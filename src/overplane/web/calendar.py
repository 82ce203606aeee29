"""Appointments in time: the iCalendar feed (``GET /calendar/{token}.ics``) and the weeks and
months the dashboard's calendar draws.

Both read a resource's first time-range field (``scheduled_time`` for appointments, see
``declarations/crm.py``) through its normalised column, so only values that are RFC 3339
date-times take a place in time; the dashboard lists the others apart.

The feed follows RFC 5545 (built with the ``icalendar`` library): one VEVENT per appointment,
``UID`` its id (stable across polls), ``SUMMARY`` its customer and status, ``DTSTART`` its
time in UTC and one hour long (the API records no end). ``LAST-MODIFIED`` and ``DTSTAMP``
are its ``updated_at`` and ``SEQUENCE`` the whole seconds between its creation and its last
update, so every change a calendar app polls again shows as a newer revision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import icalendar
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from overplane.clock import now_ms
from overplane.declarations import APPOINTMENT, Field, Resource
from overplane.errors import ResourceMissing
from overplane.rfc3339 import parse_ns
from overplane.storage.calendar_feeds import FeedStore
from overplane.storage.database import Database, Executor
from overplane.storage.listing import Compare, ListQuery, Unset
from overplane.storage.objects import ObjectStore, StoredObject
from overplane.storage.schema import time_column
from overplane.storage.tenant import Tenant

UTC = dt.UTC
#: How far back the feed reaches, and how many appointments it carries at most (the
#: newest-created first): a calendar app downloads the whole feed at every poll.
FEED_DAYS_BACK = 366
FEED_MAX_EVENTS = 5000
#: The most appointments one week or month of the dashboard's calendar shows.
VIEW_MAX = 1000
EVENT_LENGTH = dt.timedelta(hours=1)
FEED_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def time_field(resource: Resource) -> Field | None:
    """The field a resource's calendar is drawn from: its first time-range field."""
    fields = resource.time_range_fields
    return fields[0] if fields else None


def when(stored: StoredObject, resource: Resource, field: Field) -> dt.datetime | None:
    """The object's time in UTC, or None when the field's value is not an RFC 3339 date-time."""
    value = stored.values[resource.fields.index(field)]
    ns = parse_ns(value) if value is not None else None
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC)


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


async def between(
    db: Executor,
    tenant: Tenant,
    resource: Resource,
    start: dt.datetime,
    end: dt.datetime,
    limit: int = VIEW_MAX,
) -> tuple[list[StoredObject], int]:
    """The tenant's objects whose time is in ``[start, end)``, and how many there are."""
    field = time_field(resource)
    assert field is not None
    column = time_column(field.name)
    conditions = (Compare(column, ">=", _us(start)), Compare(column, "<", _us(end)))
    page = await ObjectStore(resource).list(
        db, tenant, ListQuery(conditions=conditions, limit=limit)
    )
    return page.items, page.total


async def without_time(
    db: Executor, tenant: Tenant, resource: Resource, limit: int = 100
) -> tuple[list[StoredObject], int]:
    """The tenant's objects whose time field is not an RFC 3339 date-time, and their count."""
    field = time_field(resource)
    assert field is not None
    query = ListQuery(conditions=(Unset(time_column(field.name)),), limit=limit)
    page = await ObjectStore(resource).list(db, tenant, query)
    return page.items, page.total


@dataclass(frozen=True, slots=True)
class Period:
    """The days one calendar page shows: a week (Monday first) or a month's weeks."""

    view: str
    day: dt.date
    start: dt.date
    end: dt.date  # exclusive

    @classmethod
    def of(cls, view: str, day: dt.date) -> Period:
        """The week or the month holding ``day``."""
        if view == "month":
            first = day.replace(day=1)
            following = (first + dt.timedelta(days=32)).replace(day=1)
            return cls("month", day, first, following)
        monday = day - dt.timedelta(days=day.weekday())
        return cls("week", day, monday, monday + dt.timedelta(days=7))

    @property
    def weeks(self) -> list[list[dt.date]]:
        """The grid: whole weeks from the Monday on or before ``start``."""
        first = self.start - dt.timedelta(days=self.start.weekday())
        rows: list[list[dt.date]] = []
        while first < self.end:
            rows.append([first + dt.timedelta(days=i) for i in range(7)])
            first += dt.timedelta(days=7)
        return rows

    @property
    def previous(self) -> dt.date:
        """A day of the period before."""
        if self.view == "month":
            return (self.start - dt.timedelta(days=1)).replace(day=1)
        return self.start - dt.timedelta(days=7)

    @property
    def following(self) -> dt.date:
        """A day of the period after."""
        return self.end

    @property
    def title(self) -> str:
        """``March 2024`` or ``Week of 11 March 2024``."""
        if self.view == "month":
            return self.start.strftime("%B %Y")
        return f"Week of {self.start.day} {self.start.strftime('%B %Y')}"

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        """The period as UTC instants."""
        start = dt.datetime.combine(self.start, dt.time(), UTC)
        return start, dt.datetime.combine(self.end, dt.time(), UTC)


def _value(stored: StoredObject, resource: Resource, name: str) -> str | None:
    return stored.values[resource.fields.index(resource.fields_by_name[name])]


def summary(stored: StoredObject) -> str:
    """An appointment's title: its customer, and its status in brackets."""
    name = _value(stored, APPOINTMENT, "customer_name") or "Appointment"
    status = _value(stored, APPOINTMENT, "status")
    return f"{name} ({status})" if status else name


def feed_calendar(appointments: Sequence[StoredObject], livemode: bool) -> icalendar.Calendar:
    """The RFC 5545 calendar of ``appointments`` (those without a date-time are left out)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Overplane//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Appointments ({'live' if livemode else 'test'})")
    field = APPOINTMENT.fields_by_name["scheduled_time"]
    for stored in appointments:
        start = when(stored, APPOINTMENT, field)
        if start is None:
            continue
        event = icalendar.Event()
        modified = dt.datetime.fromtimestamp(stored.updated_at // 1000, UTC)
        event.add("uid", stored.id)
        event.add("dtstamp", modified)
        event.add("created", dt.datetime.fromtimestamp(stored.created_at // 1000, UTC))
        event.add("last-modified", modified)
        event.add("sequence", max(0, (stored.updated_at - stored.created_at) // 1000))
        event.add("dtstart", start)
        event.add("duration", EVENT_LENGTH)
        event.add("summary", summary(stored))
        details = [
            f"{name.replace('_', ' ').capitalize()}: {value}"
            for name in ("customer_email", "customer_phone_number", "appointment_with")
            if (value := _value(stored, APPOINTMENT, name))
        ]
        notes = _value(stored, APPOINTMENT, "customer_details")
        if notes:
            details.append(notes)
        if details:
            event.add("description", "\n".join(details))
        status = (_value(stored, APPOINTMENT, "status") or "").strip().lower()
        if status in ("cancelled", "canceled"):
            event.add("status", "CANCELLED")
        calendar.add_component(event)
    return calendar


def feed_routes(database: Callable[[], Database]) -> list[BaseRoute]:
    """``GET /calendar/{token}.ics``: the feed a token opens; 404 for any other token."""
    feeds = FeedStore()

    async def feed(request: Request) -> Response:
        db = database()
        tenant = await feeds.tenant_of(db, request.path_params["token"])
        if tenant is None:
            raise ResourceMissing("No such calendar feed.")
        start = dt.datetime.fromtimestamp(now_ms() / 1000, UTC) - dt.timedelta(days=FEED_DAYS_BACK)
        column = time_column("scheduled_time")
        query = ListQuery(conditions=(Compare(column, ">=", _us(start)),), limit=FEED_MAX_EVENTS)
        page = await ObjectStore(APPOINTMENT).list(db, tenant, query)
        body = feed_calendar(page.items, tenant.livemode).to_ical()
        return Response(body, media_type="text/calendar; charset=utf-8", headers=FEED_HEADERS)

    return [Route("/calendar/{token}.ics", feed, methods=["GET"])]
