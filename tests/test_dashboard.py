"""The dashboard (``/dashboard``) and the calendar feed (``/calendar/{token}.ics``).

The fast tests drive the application in process on each backend: sessions and their cookie,
CSRF, forms checked by the API's validation, If-Match conflicts, the calendar, the feed and
its token API, an accessibility check of every page's markup (each control has a label,
landmarks, one h1) and of the stylesheet's colours (WCAG contrast). The browser test
(``slow``) runs the whole story in Debian's headless Chromium against a real ``overplane
serve`` on each backend, with every request to another host refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import icalendar
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from overplane.auth import keys
from overplane.declarations import APPOINTMENT, RESOURCES
from tests.helpers import Caller, RunningServer, Server, ServerLauncher
from tests.test_web import (
    CHROMIUM,
    CHROMIUM_ARGS,
    RECORD_CSP_VIOLATIONS,
    Traffic,
    storage_and_cookies,
)

CSS = Path(__file__).resolve().parent.parent / "src/overplane/web/static/dashboard.css"
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
VERSION = re.compile(r'name="version" value="(\d+)"')


def appointment_form(**values: str) -> dict[str, str]:
    """A create form with every required field filled."""
    return {
        "customer_name": "Ada",
        "scheduled_time": "2026-03-10T09:30:00Z",
        "status": "booked",
        "customer_email": "ada@example.com",
        **values,
    }


class Dashboard:
    """A browser-like session of the dashboard over the in-process app's client."""

    def __init__(self, server: Server, caller: Caller) -> None:
        self.client: httpx.Client = server.client
        self.client.cookies.clear()
        self.caller = caller
        self.csrf = ""

    def sign_in(self, key: str | None = None) -> httpx.Response:
        page = self.client.get("/dashboard/sign-in")
        token = CSRF.search(page.text)
        assert token, page.text
        response = self.client.post(
            "/dashboard/sign-in",
            data={"csrf": token.group(1), "key": key or self.caller.key},
            follow_redirects=False,
        )
        if response.status_code == 303:
            home = self.client.get("/dashboard")
            found = CSRF.search(home.text)
            assert found
            self.csrf = found.group(1)
        return response

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf, **data}, follow_redirects=False)

    def create(self, **values: str) -> str:
        response = self.post("/dashboard/crm/appointment", **appointment_form(**values))
        assert response.status_code == 303, response.text
        return response.headers["location"].split("?")[0]


@pytest.fixture
def dashboard(server: Server, api: Caller) -> Iterator[Dashboard]:
    """A signed-in dashboard of a brand-new account (test mode)."""
    board = Dashboard(server, api)
    assert board.sign_in().status_code == 303
    yield board
    board.client.cookies.clear()


# --- sessions and CSRF ------------------------------------------------------------------------


def test_sign_in_gives_an_httponly_strict_cookie_and_never_keeps_the_key(
    server: Server, api: Caller
) -> None:
    board = Dashboard(server, api)
    assert board.client.get("/dashboard", follow_redirects=False).headers["location"] == (
        "/dashboard/sign-in"
    )
    response = board.sign_in()
    cookie = response.headers["set-cookie"]
    assert "overplane_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    assert "Secure" not in cookie.split(",")[0]  # plain HTTP here; see the HTTPS test below
    assert api.key not in cookie
    assert api.key not in response.headers.get("location", "")
    home = board.client.get("/dashboard")
    assert home.status_code == 200
    assert "Test mode" in home.text
    assert api.key not in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "script-src" not in home.headers["content-security-policy"]  # no script at all
    # Stored as a hash of the token, with the key's id: the secret is in no table.
    rows = server.run(
        lambda: server.app.db.fetch_all("SELECT token_hash, key_id FROM dashboard_sessions")  # type: ignore[union-attr]
    )
    session_token = board.client.cookies["overplane_session"]
    assert all(session_token not in str(row) and api.key not in str(row) for row in rows)


def test_over_https_the_cookie_is_secure(server: Server, api: Caller) -> None:
    client = server.client
    client.cookies.clear()
    page = client.get("https://testserver/dashboard/sign-in")
    token = CSRF.search(page.text)
    assert token
    response = client.post(
        "https://testserver/dashboard/sign-in",
        data={"csrf": token.group(1), "key": api.key},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]
    client.cookies.clear()


def test_a_wrong_key_or_a_forged_form_signs_nobody_in(server: Server, api: Caller) -> None:
    board = Dashboard(server, api)
    refused = board.sign_in("sk_test_not-a-key")
    assert refused.status_code == 401
    assert "not a valid secret key" in refused.text
    # Without the sign-in form's own token (another site's form): refused.
    forged = board.client.post(
        "/dashboard/sign-in", data={"csrf": "x", "key": api.key}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert "overplane_session" not in forged.headers.get("set-cookie", "")


def test_every_write_needs_the_sessions_csrf_token_and_our_origin(dashboard: Dashboard) -> None:
    location = dashboard.create()
    no_token = dashboard.client.post(
        location + "/edit", data={"customer_name": "Eve"}, follow_redirects=False
    )
    assert no_token.status_code == 403
    foreign = dashboard.client.post(
        "/dashboard/crm/appointment",
        data={"csrf": dashboard.csrf, **appointment_form()},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    assert dashboard.caller.total(APPOINTMENT) == 1
    not_a_form = dashboard.client.post(
        "/dashboard/crm/appointment", json={"csrf": dashboard.csrf}, follow_redirects=False
    )
    assert not_a_form.status_code == 415
    bad_bytes = dashboard.client.post(
        "/dashboard/crm/appointment",
        content=b"csrf=" + dashboard.csrf.encode() + b"&customer_name=%ff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert bad_bytes.status_code == 400


def test_sign_out_and_revoking_the_key_end_the_session(server: Server) -> None:
    caller = server.new_caller()
    board = Dashboard(server, caller)
    board.sign_in()
    assert board.post("/dashboard/sign-out").status_code == 303
    assert board.client.get("/dashboard", follow_redirects=False).status_code == 303
    board.sign_in()
    assert board.client.get("/dashboard", follow_redirects=False).status_code == 200
    key_id = next(k.id for k in server.run(keys.list_keys, server.app.db, caller.account_name))
    server.run(keys.revoke_key, server.app.db, key_id)
    assert board.client.get("/dashboard", follow_redirects=False).status_code == 303
    board.client.cookies.clear()


# --- resources ----------------------------------------------------------------------------------


def test_forms_show_the_apis_own_messages_beside_every_field(dashboard: Dashboard) -> None:
    response = dashboard.post(
        "/dashboard/crm/appointment",
        **appointment_form(customer_name=" ", status="", customer_email="x" * 1001),
    )
    assert response.status_code == 400
    for name, message in [
        ("customer_name", "customer_name is required and cannot be blank."),
        ("status", "status is required and cannot be blank."),
        ("customer_email", "customer_email must be at most 1000 characters long."),
    ]:
        # The message is the API's, tied to its input by aria-describedby.
        assert f'<p class="error" id="e-{name}">{message}</p>' in response.text
        assert re.search(rf'id="{name}"[^>]*aria-describedby="e-{name} ', response.text)
        api = dashboard.caller.post(APPOINTMENT.path, json={**appointment_form(), name: " "})
        assert api.status_code == 400
    assert dashboard.caller.total(APPOINTMENT) == 0


def test_a_concurrent_edit_is_a_clear_conflict_not_a_lost_update(dashboard: Dashboard) -> None:
    location = dashboard.create()
    form = dashboard.client.get(location + "/edit")
    found = VERSION.search(form.text)
    assert found
    version = found.group(1)
    object_id = location.rsplit("/", 1)[1]
    # Someone else changes it through the API meanwhile.
    changed = dashboard.caller.patch(f"{APPOINTMENT.path}/{object_id}", json={"status": "moved"})
    assert changed.status_code == 200
    response = dashboard.post(
        location + "/edit", version=version, **appointment_form(customer_name="Ada L.")
    )
    assert response.status_code == 409
    assert "Someone else changed this appointment" in response.text
    assert "Saved meanwhile: <q>moved</q>" in response.text
    stored = dashboard.caller.get(f"{APPOINTMENT.path}/{object_id}").json()
    assert stored["customer_name"] == "Ada"
    assert stored["status"] == "moved"
    # Saving again from the conflict page (it carries the new version) goes through.
    again = VERSION.search(response.text)
    assert again
    saved = dashboard.post(
        location + "/edit", version=again.group(1), **appointment_form(customer_name="Ada L.")
    )
    assert saved.status_code == 303
    stored = dashboard.caller.get(f"{APPOINTMENT.path}/{object_id}").json()
    assert stored["customer_name"] == "Ada L."
    assert stored["status"] == "booked"


def test_delete_asks_first_and_refuses_a_stale_confirmation(dashboard: Dashboard) -> None:
    location = dashboard.create()
    confirm = dashboard.client.get(location + "/delete")
    assert "Delete permanently" in confirm.text
    found = VERSION.search(confirm.text)
    assert found
    object_id = location.rsplit("/", 1)[1]
    dashboard.caller.patch(f"{APPOINTMENT.path}/{object_id}", json={"status": "kept"})
    stale = dashboard.post(location + "/delete", version=found.group(1))
    assert stale.status_code == 409
    assert dashboard.caller.total(APPOINTMENT) == 1
    fresh = VERSION.search(stale.text)
    assert fresh
    assert dashboard.post(location + "/delete", version=fresh.group(1)).status_code == 303
    assert dashboard.caller.total(APPOINTMENT) == 0
    assert dashboard.client.get(location).status_code == 404


def test_lists_take_the_apis_filters_and_cursors_with_an_exact_total(dashboard: Dashboard) -> None:
    for index in range(7):
        dashboard.caller.create(APPOINTMENT, status="draft" if index % 2 else "booked")
    page = dashboard.client.get("/dashboard/crm/appointment?status=draft&limit=2")
    assert page.status_code == 200
    assert "3 appointments match these filters; showing 2." in page.text
    older = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert older
    second = dashboard.client.get(older.group(1).replace("&amp;", "&"))
    assert "showing 1." in second.text
    assert 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    bad = dashboard.client.get("/dashboard/crm/appointment?created_at[gte]=yesterday")
    assert bad.status_code == 400
    assert "created_at[gte] must be an RFC 3339 date-time" in bad.text
    unknown = dashboard.client.get("/dashboard/crm/appointment?colour=red")
    assert unknown.status_code == 400


def test_the_calendar_places_date_times_and_lists_the_rest_apart(dashboard: Dashboard) -> None:
    first = dashboard.create(scheduled_time="2026-03-10T09:30:00Z", customer_name="Tuesday")
    dashboard.create(scheduled_time="2026-03-20T14:00:00+01:00", customer_name="Later")
    dashboard.create(scheduled_time="next tuesday", customer_name="Vague")
    week = dashboard.client.get("/dashboard/crm/appointment/calendar?view=week&date=2026-03-11")
    assert week.status_code == 200
    assert "Week of 9 March 2026" in week.text
    assert f'href="{first}"><time datetime="2026-03-10T09:30:00+00:00">09:30</time> Tuesday' in (
        week.text
    )
    assert "Later</a>" not in week.text.split('id="undated"')[0]
    assert "Vague</a>: <q>next tuesday</q>" in week.text
    month = dashboard.client.get("/dashboard/crm/appointment/calendar?view=month&date=2026-03-01")
    assert "March 2026" in month.text
    assert "13:00</time> Later" in month.text
    odd = dashboard.client.get("/dashboard/crm/appointment/calendar?date=not-a-date&view=x")
    assert odd.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/crm/nothing",
        "/dashboard/crm/appointment/appointment_missing",
        "/dashboard/crm/appointment/x/edit",
        "/dashboard/events/evt_missing",
        "/dashboard/webhook-endpoints/we_missing",
        "/dashboard/accounts/party-link/calendar",
    ],
)
def test_what_does_not_exist_is_a_404_page(dashboard: Dashboard, path: str) -> None:
    response = dashboard.client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_events_and_redelivery(dashboard: Dashboard) -> None:
    dashboard.create()
    events = dashboard.client.get("/dashboard/events?type=appointment.*")
    assert "1 event;" in events.text
    found = re.search(r"/dashboard/events/(evt_[^\"]+)", events.text)
    assert found
    event_id = found.group(1)
    assert '"type": "appointment.created"' in dashboard.client.get(
        f"/dashboard/events/{event_id}"
    ).text.replace("&#34;", '"')
    response = dashboard.post(f"/dashboard/events/{event_id}/redeliver")
    assert response.status_code == 303
    assert dashboard.client.get("/dashboard/webhook-endpoints").status_code == 200


# --- accessibility: markup and colours ------------------------------------------------------------


class Controls(HTMLParser):
    """Form controls, their labels, landmarks and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append(tag)
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "label" and "for" in values:
            self.label_for.add(values["for"])
        if tag in ("input", "select", "textarea") and values.get("type") != "hidden":
            self.controls.append(values)


def check_page(html: str) -> None:
    """An axe-like check of one page: every control labelled (a <label for> or aria-label),
    every aria-describedby target present, ids unique, one h1, main and nav landmarks, a
    language."""
    parsed = Controls()
    parsed.feed(html)
    for control in parsed.controls:
        assert control.get("id") in parsed.label_for or control.get("aria-label"), control
        for target in control.get("aria-describedby", "").split():
            assert target in parsed.ids, (control, target)
    assert len(parsed.ids) == len(set(parsed.ids))
    assert parsed.tags.count("h1") == 1
    assert "main" in parsed.tags
    assert "header" in parsed.tags
    assert '<html lang="en">' in html


def test_every_page_passes_the_markup_checks(dashboard: Dashboard) -> None:
    location = dashboard.create(scheduled_time="2026-03-10T09:30:00Z")
    dashboard.create(scheduled_time="soon")
    events = dashboard.client.get("/dashboard/events")
    found = re.search(r"/dashboard/events/(evt_[^\"]+)", events.text)
    assert found
    paths = [
        "/dashboard",
        "/dashboard/crm/appointment",
        "/dashboard/crm/appointment?customer_name=x",
        "/dashboard/crm/appointment?created_at[gte]=bad",
        "/dashboard/crm/appointment/new",
        location,
        location + "/edit",
        location + "/delete",
        "/dashboard/crm/appointment/calendar?view=week&date=2026-03-10",
        "/dashboard/crm/appointment/calendar?view=month&date=2026-03-10",
        "/dashboard/events",
        f"/dashboard/events/{found.group(1)}",
        "/dashboard/webhook-endpoints",
        "/dashboard/nowhere/at-all",
        *(f"/dashboard/{r.module}/{r.name}" for r in RESOURCES),
    ]
    for path in paths:
        check_page(dashboard.client.get(path).text)
    invalid = dashboard.post("/dashboard/crm/appointment", customer_name="")
    check_page(invalid.text)
    dashboard.client.cookies.clear()
    check_page(dashboard.client.get("/dashboard/sign-in").text)


def luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2.1 contrast ratio of two colours."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


#: Every text/background pair the stylesheet uses, and the ratio it needs (WCAG 2.1 AA:
#: 4.5 for text, 3 for the focus ring and the form controls' borders against the page).
PAIRS = [
    ("text", "background", 4.5),
    ("text", "surface", 4.5),
    ("muted", "background", 4.5),
    ("muted", "surface", 4.5),
    ("link", "background", 4.5),
    ("link", "surface", 4.5),
    ("on-accent", "accent", 4.5),
    ("on-danger", "danger", 4.5),
    ("error-text", "background", 4.5),
    ("error-text", "error-background", 4.5),
    ("notice-text", "notice-background", 4.5),
    ("test-text", "test-background", 4.5),
    ("live-text", "live-background", 4.5),
    ("focus", "background", 3.0),
    ("focus", "surface", 3.0),
    ("line", "background", 3.0),
    ("danger", "background", 3.0),
]


def palette() -> dict[str, str]:
    """The stylesheet's colour variables."""
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", CSS.read_text()))


def test_every_colour_pair_meets_wcag_aa_contrast() -> None:
    colours = palette()
    ratios = {f"{a} on {b}": contrast(colours[a], colours[b]) for a, b, _ in PAIRS}
    for (first, second, needed), ratio in zip(PAIRS, ratios.values(), strict=True):
        assert ratio >= needed, f"{first} on {second}: {ratio:.2f} < {needed}"
    assert set(colours) == {name for pair in PAIRS for name in pair[:2]}, "check every colour"


# --- the calendar feed ------------------------------------------------------------------------


def events_of(body: bytes) -> dict[str, Any]:
    """The feed's VEVENTs by UID, parsed with the icalendar library."""
    calendar = icalendar.Calendar.from_ical(body)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def test_the_feed_round_trips_an_appointment_change(server: Server, api: Caller) -> None:
    created = api.post("/api/crm/calendar-feeds", json={"description": "Front desk"})
    assert created.status_code == 201
    feed = created.json()
    assert feed["url"] == f"/calendar/{feed['token']}.ics"
    assert created.headers["location"] == f"/api/crm/calendar-feeds/{feed['id']}"
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    dated = api.create(
        APPOINTMENT, customer_name="Grace", status="booked", scheduled_time=soon.isoformat()
    )
    api.create(APPOINTMENT, customer_name="Someday", scheduled_time="scheduled_time_example")
    other = server.new_caller()
    other.create(APPOINTMENT, customer_name="Not yours", scheduled_time=soon.isoformat())
    live = server.new_caller("live", api.account_name)
    live.create(APPOINTMENT, customer_name="Live one", scheduled_time=soon.isoformat())

    response = server.client.get(feed["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    events = events_of(response.content)
    assert list(events) == [dated["id"]]
    event = events[dated["id"]]
    assert str(event["SUMMARY"]) == "Grace (booked)"
    assert event.decoded("DTSTART") == soon
    first_sequence = int(event["SEQUENCE"])
    first_modified = event.decoded("LAST-MODIFIED")

    time.sleep(1.1)  # SEQUENCE and LAST-MODIFIED count whole seconds
    later = soon + dt.timedelta(hours=3)
    changed = api.patch(
        f"{APPOINTMENT.path}/{dated['id']}",
        json={"status": "cancelled", "scheduled_time": later.isoformat()},
    )
    assert changed.status_code == 200
    event = events_of(server.client.get(feed["url"]).content)[dated["id"]]
    assert str(event["SUMMARY"]) == "Grace (cancelled)"
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.decoded("DTSTART") == later
    assert int(event["SEQUENCE"]) > first_sequence
    assert event.decoded("LAST-MODIFIED") > first_modified

    # Listed and retrieved without the token; deleting revokes it.
    listed = api.get("/api/crm/calendar-feeds").json()
    assert listed["total"] == 1
    assert listed["data"][0] == {
        "id": feed["id"],
        "created_at": feed["created_at"],
        "description": "Front desk",
    }
    assert api.get(f"/api/crm/calendar-feeds/{feed['id']}").json() == listed["data"][0]
    assert api.delete(f"/api/crm/calendar-feeds/{feed['id']}").json()["deleted"] is True
    gone = server.client.get(feed["url"])
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "resource_missing"
    assert api.get(f"/api/crm/calendar-feeds/{feed['id']}").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/calendar/nope.ics", "/calendar/calt_unknown.ics", "/calendar/" + "calt_" * 99 + ".ics"],
)
def test_an_unknown_feed_token_is_a_404(server: Server, path: str) -> None:
    assert server.client.get(path).status_code == 404


def test_feed_requests_are_checked_like_any_write(api: Caller) -> None:
    path = "/api/crm/calendar-feeds"
    assert api.post(path, json={"colour": "red"}).json()["error"]["code"] == "parameter_unknown"
    assert api.post(path, json={"description": 5}).json()["error"]["param"] == "description"
    assert api.post(path).status_code == 201  # the body is optional
    assert api.get(path + "/calfeed_nope").status_code == 404
    assert api.patch(path + "/calfeed_nope", json={}).status_code == 405
    assert api.get(path, params={"limit": "0"}).status_code == 400


# --- in a real browser --------------------------------------------------------------------------


@pytest.fixture
def live_server(fresh_database_url: str, start_server: ServerLauncher) -> tuple[RunningServer, str]:
    """A real ``overplane serve`` on a new database of each backend, and its bootstrap key."""
    return start_server.with_new_key(fresh_database_url)


@pytest.fixture
def chromium(live_server: tuple[RunningServer, str]) -> Iterator[Browser]:
    """Debian's Chromium, started after the server's database exists (making a PostgreSQL
    database runs its own event loop, which Playwright's running loop would refuse)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def save(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot into the test's folder, and into docs/images when
    OVERPLANE_UPDATE_SCREENSHOTS is set (how the committed ones were made)."""
    page.screenshot(path=tmp_path / name, full_page=True)
    if os.environ.get("OVERPLANE_UPDATE_SCREENSHOTS"):
        page.screenshot(path=DOCS_IMAGES / name, full_page=True)


@pytest.mark.slow
def test_the_dashboard_in_a_browser(
    chromium: Browser,
    live_server: tuple[RunningServer, str],
    tmp_path: Path,
) -> None:
    """Sign in, create (with a validation error first), filter, page, edit, a conflicting
    edit, delete, the calendar (desktop and phone), keyboard order, sign out; no request
    leaves the server, nothing violates the pages' policy, the key stays out of the browser."""
    served, key = live_server
    traffic = Traffic(host=urlsplit(served.base_url).netloc)
    context = chromium.new_context(service_workers="block", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    context.route("**/*", traffic.route)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    base = served.base_url
    try:
        page.goto(base + "/")
        page.get_by_role("link", name="Dashboard").click()
        expect(page).to_have_url(base + "/dashboard/sign-in")
        page.get_by_label("Secret key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#mode")).to_have_text("Test mode")
        cookie = next(c for c in context.cookies() if c["name"] == "overplane_session")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert key not in storage_and_cookies(page)
        assert page.evaluate("() => document.cookie") == ""  # nothing a script can read

        # Create: a blank required field first, then the real thing.
        page.get_by_role("link", name="Appointments", exact=True).click()
        page.get_by_role("link", name="New appointment").click()
        # The new page must have loaded before the key press, or Tab lands on the old one.
        page.wait_for_url("**/new")
        page.wait_for_load_state()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.locator("#customer_name").focus()
        order = [page.evaluate("() => document.activeElement.id")]
        for _ in range(len(APPOINTMENT.fields) - 1):
            page.keyboard.press("Tab")
            order.append(page.evaluate("() => document.activeElement.id"))
        assert order == [f.name for f in APPOINTMENT.fields]  # the declaration's order
        page.get_by_label("scheduled_time").fill("2026-03-10T09:30:00Z")
        page.get_by_label("status").fill("booked")
        page.get_by_label("customer_email").fill("ada@example.com")
        page.get_by_role("button", name="Create").click()
        name_input = page.get_by_label("customer_name")
        expect(name_input).to_have_attribute("aria-invalid", "true")
        expect(name_input).to_have_accessible_description(re.compile("cannot be blank"))
        save(page, tmp_path, "dashboard-form-error.png")
        name_input.fill("Ada Lovelace")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_have_text("Created.")
        appointment_url = page.url.split("?")[0]

        # More through the API, to filter and page.
        with served.client(key) as api:
            for index in range(24):
                body = {
                    "customer_name": f"Customer {index}",
                    "scheduled_time": f"2026-03-{11 + index % 5:02d}T1{index % 8}:00:00Z",
                    "status": "draft" if index % 3 else "booked",
                    "customer_email": "c@example.com",
                }
                assert api.post("/api/crm/appointment", json=body).status_code == 201
            api.post("/api/crm/appointment", json={**body, "scheduled_time": "after lunch"})
        page.goto(base + "/dashboard/crm/appointment")
        expect(page.locator("#total")).to_have_text("26 appointments; showing 20.")
        page.get_by_role("link", name="Older →").click()
        expect(page.locator("#total")).to_have_text("26 appointments; showing 6.")
        page.get_by_role("link", name="← Newer").click()
        expect(page.locator("#total")).to_have_text("26 appointments; showing 20.")
        page.locator("summary").click()
        page.locator("#f-status").fill("booked")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("#total")).to_have_text(
            "9 appointments match these filters; showing 9."
        )
        save(page, tmp_path, "dashboard-list.png")

        # Edit, and a conflicting edit from a second tab.
        page.goto(appointment_url + "/edit")
        other = context.new_page()
        other.goto(appointment_url + "/edit")
        other.get_by_label("status").fill("confirmed")
        other.get_by_role("button", name="Save").click()
        expect(other.get_by_role("status")).to_have_text("Saved.")
        page.get_by_label("customer_name").fill("Ada King")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#conflict")).to_contain_text("Someone else changed this appointment")
        expect(page.locator("#c-status")).to_contain_text("confirmed")
        save(page, tmp_path, "dashboard-conflict.png")
        page.get_by_label("status").fill("confirmed")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        expect(page.locator("dl.object")).to_contain_text("Ada King")
        other.close()

        # The calendar: week and month, click through; a phone-sized screen.
        page.goto(base + "/dashboard/crm/appointment/calendar?view=week&date=2026-03-10")
        expect(page.locator("#period")).to_have_text("Week of 9 March 2026")
        expect(page.locator(".undated")).to_contain_text("after lunch")
        save(page, tmp_path, "dashboard-calendar-week.png")
        page.get_by_role("link", name="Month").click()
        expect(page.locator("#period")).to_have_text("March 2026")
        save(page, tmp_path, "dashboard-calendar-month.png")
        page.get_by_role("link", name="09:30 Ada King").click()
        expect(page).to_have_url(appointment_url)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(base + "/dashboard/crm/appointment/calendar?view=month&date=2026-03-10")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        save(page, tmp_path, "dashboard-calendar-phone.png")
        page.set_viewport_size({"width": 1280, "height": 900})

        # Delete, confirmed.
        page.goto(appointment_url)
        page.get_by_role("link", name="Delete…").click()
        page.get_by_role("button", name="Delete permanently").click()
        expect(page.get_by_role("status")).to_have_text("Deleted.")
        expect(page.locator("#total")).to_have_text("25 appointments; showing 20.")

        # Sign out: the dashboard asks for a key again.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("status")).to_have_text("You are signed out.")
        page.goto(base + "/dashboard")
        expect(page).to_have_url(base + "/dashboard/sign-in")
        assert not [c for c in context.cookies() if c["name"] == "overplane_session"]

        assert page.evaluate("() => window.__cspViolations") == []
        assert traffic.refused == []
        assert {urlsplit(url).netloc for url in traffic.requested} == {traffic.host}
    finally:
        context.close()
