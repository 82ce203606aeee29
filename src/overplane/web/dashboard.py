"""The dashboard (``/dashboard``): every declared resource, its events and webhook endpoints,
and a calendar, as server-rendered pages for people.

Everything here is derived from the declarations like the API: a list page (the API's
filters, cursor paging, the exact total), an object page, create and edit forms (checked by
the API's own validation, every field's message beside it), edit and delete guarded by the
version the form was rendered with (the API's If-Match), and a week or month calendar for
each resource with a time-range field. Writes go through the same storage calls as the API,
with their events. Pages need no JavaScript at all; sessions and CSRF are in ``session.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from overplane.auth.keys import authenticate
from overplane.clock import now_ms
from overplane.declarations import Resource
from overplane.errors import InvalidRequest
from overplane.rendering import EventRenderer, webhook_attempt, webhook_endpoint
from overplane.rfc3339 import format_ms
from overplane.storage import sessions
from overplane.storage.database import Database
from overplane.storage.events import EventOrigin, EventStore
from overplane.storage.ids import new_request_id
from overplane.storage.listing import CursorNotFound, ListQuery, Page
from overplane.storage.objects import ObjectStore, StoredObject
from overplane.storage.sessions import SessionInfo
from overplane.storage.webhooks import DeliveryStore, EndpointStore
from overplane.validation.fields import field_problems, validate_fields
from overplane.validation.list_query import EventQueryParser, ListQueryParser, QueryParser
from overplane.web import calendar
from overplane.web.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    FormRefused,
    clear_cookie,
    csrf_token,
    new_sign_in_token,
    read_form,
    same_token,
    set_cookie,
)

PREFIX = "/dashboard"
#: No script at all, nothing from another host, no framing: the pages are plain HTML forms.
POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the
    # forms' POSTs, which the Origin check must refuse; same-origin still tells other sites
    # nothing (the URLs hold object ids and filters).
    "Referrer-Policy": "same-origin",
    # frame-ancestors 'none' says it to current browsers; this to those before CSP level 2.
    "X-Frame-Options": "DENY",
    # Pages show account data: never kept by the browser's cache or a proxy.
    "Cache-Control": "no-store",
}
#: Notices a redirect may ask the next page to show (fixed texts: nothing from the URL is
#: echoed into the page).
NOTICES = {
    "created": "Created.",
    "updated": "Saved.",
    "deleted": "Deleted.",
    "redelivered": "The event is due again at its endpoints.",
    "signed-out": "You are signed out.",
}
LIST_COLUMNS = 3
LIMITS = (10, 20, 50, 100)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("overplane.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["time"] = format_ms


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed-in request: whose session, and the CSRF token its forms carry."""

    info: SessionInfo
    csrf: str


def render(
    name: str, status: int = 200, signed: Signed | None = None, **context: Any
) -> HTMLResponse:
    """A page of ``templates/dashboard/``."""
    html = _templates.get_template(f"dashboard/{name}").render(signed=signed, **context)
    return HTMLResponse(html, status, headers=PAGE_HEADERS)


def message_page(status: int, title: str, message: str, signed: Signed | None = None) -> Response:
    """A page that only says what went wrong (404, 403, 400 …)."""
    return render("message.html", status, signed, title=title, message=message, nav=NAV)


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link of the navigation."""

    label: str
    href: str


NAV: list[NavItem] = []


def base_path(resource: Resource) -> str:
    """The dashboard path of a resource's list: ``/dashboard/crm/appointment``."""
    return f"{PREFIX}/{resource.module}/{resource.name}"


def _version(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


class Dashboard:
    """The dashboard's routes, bound to the application's database and policies."""

    def __init__(
        self,
        resources: Sequence[Resource],
        database: Callable[[], Database],
        *,
        session_ms: int,
        events: bool,
    ) -> None:
        self.resources = {(r.module, r.name): r for r in resources}
        self.stores = {r.name: ObjectStore(r) for r in resources}
        self.parsers = {r.name: ListQueryParser(r) for r in resources}
        self.database = database
        self.session_ms = session_ms
        self.events_on = events
        self.event_store = EventStore()
        self.event_renderer = EventRenderer(resources)
        self.event_parser = EventQueryParser([t for r in resources for t in r.event_types])
        self.endpoint_store = EndpointStore()
        self.deliveries = DeliveryStore()
        NAV[:] = [
            NavItem(r.title + "s" if not r.plural else r.plural.capitalize(), base_path(r))
            for r in resources
        ]
        NAV.extend(
            NavItem(f"{r.title} calendar", base_path(r) + "/calendar")
            for r in resources
            if calendar.time_field(r) is not None
        )
        NAV.extend(
            [
                NavItem("Events", PREFIX + "/events"),
                NavItem("Webhook endpoints", PREFIX + "/webhook-endpoints"),
            ]
        )

    # --- sessions ---------------------------------------------------------------------------

    async def signed_in(self, request: Request) -> Signed | None:
        """The request's valid session, if any."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        info = await sessions.find(self.database(), token, now_ms())
        return None if info is None else Signed(info, csrf_token(token))

    def page(
        self, handler: Callable[[Request, Signed], Awaitable[Response]], *, write: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for signed-in requests only; a write must carry the session's CSRF
        token (the form is read once, here, and handed on in ``request.state.form``)."""

        async def endpoint(request: Request) -> Response:
            signed = await self.signed_in(request)
            if write:
                try:
                    form = await read_form(request)
                except FormRefused as refused:
                    return message_page(refused.status, "Not done", refused.message, signed)
                if signed is None:
                    return message_page(
                        403, "Signed out", "Your session has ended: sign in again.", None
                    )
                if not same_token(form.get("csrf"), signed.csrf):
                    return message_page(
                        403,
                        "Not done",
                        "This form is out of date or was not sent from this dashboard; "
                        "reload the page and try again.",
                        signed,
                    )
                request.state.form = form
            elif signed is None:
                return RedirectResponse(PREFIX + "/sign-in", 303)
            return await handler(request, signed)

        return endpoint

    async def sign_in_page(self, request: Request, error: str | None = None) -> Response:
        """The sign-in form, with its double-submit token."""
        token = request.cookies.get(SIGN_IN_COOKIE) or new_sign_in_token()
        notice = NOTICES.get(request.query_params.get("done", ""))
        response = render(
            "sign_in.html",
            401 if error else 200,
            None,
            csrf=token,
            error=error,
            notice=notice,
            nav=[],
        )
        set_cookie(response, request, SIGN_IN_COOKIE, token, 3600)
        return response

    async def sign_in(self, request: Request) -> Response:
        """Check the key like the API does and open a session for it."""
        try:
            form = await read_form(request)
        except FormRefused as refused:
            return message_page(refused.status, "Not signed in", refused.message)
        expected = request.cookies.get(SIGN_IN_COOKIE)
        if not expected or not same_token(form.get("csrf"), expected):
            return message_page(
                403, "Not signed in", "The sign-in form was out of date; reload it and try again."
            )
        key = form.get("key", "").strip()
        db = self.database()
        principal = await authenticate(db, key) if key else None
        if principal is None:
            return await self.sign_in_page(
                request, "That is not a valid secret key (sk_test_… or sk_live_…)."
            )
        now = now_ms()
        token = await sessions.create(
            db, principal.tenant, principal.key_id, now, now + self.session_ms
        )
        response = RedirectResponse(PREFIX, 303)
        set_cookie(response, request, SESSION_COOKIE, token, self.session_ms // 1000)
        clear_cookie(response, request, SIGN_IN_COOKIE)
        return response

    async def sign_out(self, request: Request, signed: Signed) -> Response:
        """End the session here and in the database."""
        await sessions.end(self.database(), request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse(PREFIX + "/sign-in?done=signed-out", 303)
        clear_cookie(response, request, SESSION_COOKIE)
        return response

    # --- helpers ----------------------------------------------------------------------------

    def resource_of(self, request: Request) -> Resource | None:
        """The resource a path names, or None."""
        key = (request.path_params["module"], request.path_params["name"])
        return self.resources.get(key)

    async def object_of(
        self, request: Request, signed: Signed
    ) -> tuple[Resource, StoredObject] | None:
        """The resource and the object an object page's path names, or None if either is
        not there (for this account and mode)."""
        resource = self.resource_of(request)
        if resource is None:
            return None
        stored = await self.stores[resource.name].retrieve(
            self.database(), signed.info.tenant, request.path_params["id"]
        )
        return None if stored is None else (resource, stored)

    def origin(self, request: Request) -> EventOrigin | None:
        """What the event of a dashboard write records (None when events are off)."""
        if not self.events_on:
            return None
        return EventOrigin(request.scope.get("overplane.request_id") or new_request_id(), None)

    @staticmethod
    def query_pairs(request: Request) -> list[tuple[str, str]]:
        """The list's query string, empty filter boxes and the notice (``done``) left out."""
        return [(k, v) for k, v in request.query_params.multi_items() if v != "" and k != "done"]

    @staticmethod
    def paging(
        request: Request, pairs: list[tuple[str, str]], query: ListQuery, page: Page[Any]
    ) -> dict[str, str | None]:
        """The links to the previous and next pages (by cursor), keeping the filters."""
        kept = [(k, v) for k, v in pairs if k not in ("starting_after", "ending_before", "offset")]
        ids = [getattr(item, "id") for item in page.items]  # noqa: B009 (any row with an id)
        newer = older = False
        if query.ending_before is not None:
            newer, older = page.has_more, bool(ids)
        elif query.starting_after is not None:
            newer, older = bool(ids), page.has_more
        else:
            newer, older = query.offset > 0 and bool(ids), page.has_more

        def link(name: str, cursor: str) -> str:
            return request.url.path + "?" + urlencode([*kept, (name, cursor)])

        return {
            "previous": link("ending_before", ids[0]) if newer and ids else None,
            "next": link("starting_after", ids[-1]) if older and ids else None,
        }

    # --- resources --------------------------------------------------------------------------

    async def home(self, request: Request, signed: Signed) -> Response:
        """What this account has, per resource, in this mode."""
        db = self.database()
        counts = []
        for resource in self.resources.values():
            page = await self.stores[resource.name].list(db, signed.info.tenant, ListQuery(limit=1))
            counts.append((resource, base_path(resource), page.total))
        return render("home.html", signed=signed, nav=NAV, counts=counts)

    async def list_objects(self, request: Request, signed: Signed) -> Response:
        """A page of objects: the API's filters and cursors, and the exact total."""
        resource = self.resource_of(request)
        if resource is None:
            return message_page(404, "Not found", "There is no such page.", signed)
        pairs = self.query_pairs(request)
        error: InvalidRequest | None = None
        page: Page[StoredObject] = Page([], 0, False)
        query = ListQuery()
        try:
            query = self.parsers[resource.name].parse(pairs)
            page = await self.stores[resource.name].list(self.database(), signed.info.tenant, query)
        except InvalidRequest as exc:
            error = exc
        except CursorNotFound as exc:
            error = InvalidRequest(f"{exc.parameter} names no {resource.title.lower()} here.")
        shown = resource.fields[:LIST_COLUMNS]
        field = calendar.time_field(resource)
        if field is not None and field not in shown:
            shown = (*shown, field)
        return render(
            "list.html",
            400 if error else 200,
            signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            page=page,
            columns=shown,
            values={name: value for name, value in pairs},
            error=error,
            paging=self.paging(request, pairs, query, page),
            limits=LIMITS,
            limit=query.limit,
            filtered=any(k not in ("starting_after", "ending_before", "limit") for k, _ in pairs),
            time_fields=resource.time_range_fields,
            notice=NOTICES.get(request.query_params.get("done", "")),
        )

    async def show(self, request: Request, signed: Signed) -> Response:
        """One object."""
        found = await self.object_of(request, signed)
        if found is None:
            return message_page(404, "Not found", "There is no such object here.", signed)
        resource, stored = found
        return render(
            "object.html",
            signed=signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            stored=stored,
            rows=list(zip(resource.fields, stored.values, strict=True)),
            notice=NOTICES.get(request.query_params.get("done", "")),
        )

    def form_page(
        self,
        signed: Signed,
        resource: Resource,
        *,
        status: int = 200,
        stored: StoredObject | None = None,
        values: Mapping[str, str | None],
        problems: Mapping[str, str] | None = None,
        conflict: StoredObject | None = None,
        version: int | None = None,
    ) -> Response:
        """The create or edit form."""
        current = (
            dict(zip((f.name for f in resource.fields), conflict.values, strict=True))
            if conflict
            else {}
        )
        return render(
            "form.html",
            status,
            signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            stored=stored,
            values=values,
            problems=problems or {},
            conflict=conflict,
            current=current,
            version=version,
        )

    async def new(self, request: Request, signed: Signed) -> Response:
        """An empty create form."""
        resource = self.resource_of(request)
        if resource is None:
            return message_page(404, "Not found", "There is no such page.", signed)
        return self.form_page(signed, resource, values={})

    async def create(self, request: Request, signed: Signed) -> Response:
        """Create from the form, or show it again with every field's problem."""
        resource = self.resource_of(request)
        if resource is None:
            return message_page(404, "Not found", "There is no such page.", signed)
        form: dict[str, str] = request.state.form
        payload: dict[str, Any] = {}
        for field in resource.fields:
            value = form.get(field.name, "")
            if value != "" or field.required:
                payload[field.name] = value
        problems = field_problems(resource, payload, partial=False)
        if problems:
            return self.form_page(signed, resource, status=400, values=form, problems=problems)
        values = validate_fields(resource, payload, partial=False)
        stored = await self.stores[resource.name].create(
            self.database(), signed.info.tenant, values, self.origin(request)
        )
        return RedirectResponse(f"{base_path(resource)}/{stored.id}?done=created", 303)

    async def edit(self, request: Request, signed: Signed) -> Response:
        """The edit form, holding the version it shows."""
        found = await self.object_of(request, signed)
        if found is None:
            return message_page(404, "Not found", "There is no such object here.", signed)
        resource, stored = found
        values = dict(zip((f.name for f in resource.fields), stored.values, strict=True))
        return self.form_page(
            signed, resource, stored=stored, values=values, version=stored.updated_at
        )

    async def update(self, request: Request, signed: Signed) -> Response:
        """Save the fields the form changed, if the object is still the version it showed;
        else show both versions."""
        resource = self.resource_of(request)
        if resource is None:
            return message_page(404, "Not found", "There is no such page.", signed)
        form: dict[str, str] = request.state.form
        version = _version(form.get("version"))
        store, db, tenant = self.stores[resource.name], self.database(), signed.info.tenant
        object_id = request.path_params["id"]
        stored = await store.retrieve(db, tenant, object_id)
        if stored is None:
            return message_page(
                404, "Not found", f"This {resource.title.lower()} no longer exists.", signed
            )
        if version is None:
            return message_page(400, "Not saved", "The form has no valid version.", signed)
        changes: dict[str, Any] = {}
        for field, old in zip(resource.fields, stored.values, strict=True):
            if field.name not in form:
                continue
            sent = form[field.name]
            new = None if sent == "" and not field.required else sent
            if sent == "" and old in (None, ""):
                continue
            if new != old:
                changes[field.name] = new
        problems = field_problems(resource, changes, partial=True)
        if problems:
            return self.form_page(
                signed,
                resource,
                status=400,
                stored=stored,
                values=form,
                problems=problems,
                version=version,
            )
        values = validate_fields(resource, changes, partial=True)
        updated = await store.update(
            db, tenant, object_id, values, (version,), self.origin(request)
        )
        if updated is None:
            current = await store.retrieve(db, tenant, object_id)
            if current is None:
                return message_page(
                    404,
                    "Not found",
                    f"This {resource.title.lower()} was deleted meanwhile.",
                    signed,
                )
            return self.form_page(
                signed,
                resource,
                status=409,
                stored=current,
                values=form,
                conflict=current,
                version=current.updated_at,
            )
        return RedirectResponse(f"{base_path(resource)}/{object_id}?done=updated", 303)

    async def confirm_delete(self, request: Request, signed: Signed) -> Response:
        """Ask before deleting."""
        found = await self.object_of(request, signed)
        if found is None:
            return message_page(404, "Not found", "There is no such object here.", signed)
        resource, stored = found
        return render(
            "delete.html",
            signed=signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            stored=stored,
            rows=list(zip(resource.fields, stored.values, strict=True)),
            changed=False,
        )

    async def delete(self, request: Request, signed: Signed) -> Response:
        """Delete, if the object is still the version the confirmation showed."""
        resource = self.resource_of(request)
        if resource is None:
            return message_page(404, "Not found", "There is no such page.", signed)
        version = _version(request.state.form.get("version"))
        store, db, tenant = self.stores[resource.name], self.database(), signed.info.tenant
        object_id = request.path_params["id"]
        if version is not None and await store.delete(
            db, tenant, object_id, (version,), self.origin(request)
        ):
            return RedirectResponse(f"{base_path(resource)}?done=deleted", 303)
        current = await store.retrieve(db, tenant, object_id)
        if current is None:
            return message_page(
                404, "Not found", f"This {resource.title.lower()} no longer exists.", signed
            )
        return render(
            "delete.html",
            409,
            signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            stored=current,
            rows=list(zip(resource.fields, current.values, strict=True)),
            changed=True,
        )

    async def calendar_page(self, request: Request, signed: Signed) -> Response:
        """A week or a month of a resource's objects by their time field, and those whose
        value is not a date-time, listed apart."""
        resource = self.resource_of(request)
        field = calendar.time_field(resource) if resource is not None else None
        if resource is None or field is None:
            return message_page(404, "Not found", "There is no such calendar.", signed)
        view = "month" if request.query_params.get("view") == "month" else "week"
        today = dt.datetime.fromtimestamp(now_ms() / 1000, dt.UTC).date()
        try:
            day = dt.date.fromisoformat(request.query_params.get("date", "") or today.isoformat())
        except ValueError:
            day = today
        period = calendar.Period.of(view, day)
        start, end = period.span()
        db, tenant = self.database(), signed.info.tenant
        items, total = await calendar.between(db, tenant, resource, start, end)
        by_day: dict[dt.date, list[tuple[dt.datetime, StoredObject]]] = {}
        for stored in items:
            moment = calendar.when(stored, resource, field)
            if moment is not None:
                by_day.setdefault(moment.date(), []).append((moment, stored))
        for entries in by_day.values():
            entries.sort(key=lambda entry: entry[0])
        undated, undated_total = await calendar.without_time(db, tenant, resource)
        label_field = resource.required_fields[0] if resource.required_fields else field
        label_index = resource.fields.index(label_field)
        return render(
            "calendar.html",
            signed=signed,
            nav=NAV,
            resource=resource,
            base=base_path(resource),
            field=field,
            period=period,
            by_day=by_day,
            total=total,
            shown=len(items),
            undated=undated,
            undated_total=undated_total,
            label_index=label_index,
            field_index=resource.fields.index(field),
            today=today,
        )

    # --- events and webhook endpoints ---------------------------------------------------------

    async def events(self, request: Request, signed: Signed) -> Response:
        """A page of events, filtered by type like the API's list."""
        pairs = self.query_pairs(request)
        error: InvalidRequest | None = None
        page: Page[Any] = Page([], 0, False)
        query = ListQuery()
        try:
            query = self.event_parser.parse(pairs)
            page = await self.event_store.list(self.database(), signed.info.tenant, query)
        except InvalidRequest as exc:
            error = exc
        except CursorNotFound as exc:
            error = InvalidRequest(f"{exc.parameter} names no event here.")
        rows = [self.event_renderer.as_dict(event) for event in page.items]
        return render(
            "events.html",
            400 if error else 200,
            signed,
            nav=NAV,
            page=page,
            rows=rows,
            error=error,
            values=dict(pairs),
            paging=self.paging(request, pairs, query, page),
        )

    async def event(self, request: Request, signed: Signed) -> Response:
        """One event, as the API shows it, with a button to send it again."""
        event = await self.event_store.retrieve(
            self.database(), signed.info.tenant, request.path_params["id"]
        )
        if event is None:
            return message_page(404, "Not found", "There is no such event here.", signed)
        shown = self.event_renderer.as_dict(event)
        return render(
            "event.html",
            signed=signed,
            nav=NAV,
            event=shown,
            pretty=json.dumps(shown, indent=2, ensure_ascii=False),
            notice=NOTICES.get(request.query_params.get("done", "")),
        )

    async def redeliver(self, request: Request, signed: Signed) -> Response:
        """Make the event due again at every enabled endpoint subscribed to its type."""
        db, tenant = self.database(), signed.info.tenant
        event = await self.event_store.retrieve(db, tenant, request.path_params["id"])
        if event is None:
            return message_page(404, "Not found", "There is no such event here.", signed)
        targets = await self.endpoint_store.subscribed(db, tenant, event.type)
        await self.deliveries.redeliver(db, tenant, event.id, targets, now_ms())
        return RedirectResponse(f"{PREFIX}/events/{event.id}?done=redelivered", 303)

    async def endpoints(self, request: Request, signed: Signed) -> Response:
        """A page of webhook endpoints."""
        pairs = self.query_pairs(request)
        error: InvalidRequest | None = None
        page: Page[Any] = Page([], 0, False)
        query = ListQuery()
        try:
            query = QueryParser().parse(pairs)
            page = await self.endpoint_store.list(self.database(), signed.info.tenant, query)
        except InvalidRequest as exc:
            error = exc
        except CursorNotFound as exc:
            error = InvalidRequest(f"{exc.parameter} names no webhook endpoint here.")
        rows = [webhook_endpoint(endpoint) for endpoint in page.items]
        return render(
            "endpoints.html",
            400 if error else 200,
            signed,
            nav=NAV,
            page=page,
            rows=rows,
            error=error,
            paging=self.paging(request, pairs, query, page),
        )

    async def endpoint(self, request: Request, signed: Signed) -> Response:
        """One webhook endpoint and its latest delivery attempts."""
        db, tenant = self.database(), signed.info.tenant
        found = await self.endpoint_store.retrieve(db, tenant, request.path_params["id"])
        if found is None:
            return message_page(404, "Not found", "There is no such webhook endpoint.", signed)
        attempts = await self.deliveries.list_attempts(db, tenant, found.id, ListQuery(limit=50))
        return render(
            "endpoint.html",
            signed=signed,
            nav=NAV,
            endpoint=webhook_endpoint(found),
            attempts=[webhook_attempt(a) for a in attempts.items],
            attempts_total=attempts.total,
        )

    def routes(self) -> list[BaseRoute]:
        """The dashboard's routes (fixed paths before the resource patterns)."""
        resource = PREFIX + "/{module}/{name}"
        return [
            Route(PREFIX, self.page(self.home), methods=["GET"]),
            Route(PREFIX + "/sign-in", self.sign_in_page, methods=["GET"]),
            Route(PREFIX + "/sign-in", self.sign_in, methods=["POST"]),
            Route(PREFIX + "/sign-out", self.page(self.sign_out, write=True), methods=["POST"]),
            Route(PREFIX + "/events", self.page(self.events), methods=["GET"]),
            Route(PREFIX + "/events/{id}", self.page(self.event), methods=["GET"]),
            Route(
                PREFIX + "/events/{id}/redeliver",
                self.page(self.redeliver, write=True),
                methods=["POST"],
            ),
            Route(PREFIX + "/webhook-endpoints", self.page(self.endpoints), methods=["GET"]),
            Route(PREFIX + "/webhook-endpoints/{id}", self.page(self.endpoint), methods=["GET"]),
            Route(resource, self.page(self.list_objects), methods=["GET"]),
            Route(resource, self.page(self.create, write=True), methods=["POST"]),
            Route(resource + "/new", self.page(self.new), methods=["GET"]),
            Route(resource + "/calendar", self.page(self.calendar_page), methods=["GET"]),
            Route(resource + "/{id}", self.page(self.show), methods=["GET"]),
            Route(resource + "/{id}/edit", self.page(self.edit), methods=["GET"]),
            Route(resource + "/{id}/edit", self.page(self.update, write=True), methods=["POST"]),
            Route(resource + "/{id}/delete", self.page(self.confirm_delete), methods=["GET"]),
            Route(resource + "/{id}/delete", self.page(self.delete, write=True), methods=["POST"]),
        ]
