"""The pages for people (``/``, ``/docs``, ``/static/…``) work on a machine without internet.

The fast tests read the pages and files through the application in process. The browser tests
(``slow``) start a real ``overplane serve``, open it in Debian's headless Chromium through
Playwright, refuse every request to another host and record them all: Swagger UI must render,
authorize and run a request with nothing but this server, under the page's own
Content-Security-Policy, and must leave no key behind in the browser.

No browser is ever downloaded: the tests drive ``/usr/bin/chromium`` (or
``OVERPLANE_TEST_CHROMIUM``) and fail, naming the apt command, where it is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright
from starlette.testclient import TestClient

from overplane.http.app import OverplaneApp
from overplane.settings import Settings
from tests.helpers import NO_LIMITS, RunningServer, ServerLauncher

WEB = Path(__file__).resolve().parent.parent / "src" / "overplane" / "web"
SWAGGER_UI = WEB / "static" / "swagger-ui"
CHROMIUM = os.environ.get("OVERPLANE_TEST_CHROMIUM", "/usr/bin/chromium")
# Everything Chromium might fetch on its own (updates, sync, field trials) is switched off, so
# the only requests are the page's, and the route below sees each of them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LANDING_LINKS = ["/dashboard", "/docs", "/openapi.json", "/healthz", "/readyz"]
UNLOCKED = re.compile(r"\bunlocked\b")
LOCKED = re.compile(r"(^|\s)locked\b")
# Collects Content-Security-Policy violations where the test can read them.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


class Elements(HTMLParser):
    """The start tags of an HTML page with their attributes, and whether scripts are inline."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True

    def attribute(self, tag: str, name: str) -> list[str]:
        """The values of attribute ``name`` on every ``tag`` element."""
        return [attrs[name] for t, attrs in self.tags if t == tag and name in attrs]


def elements(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.fixture
def client(tmp_sqlite_url: str) -> TestClient:
    """The application in process, without its lifespan: the pages need no database."""
    app = OverplaneApp(Settings(database_url=tmp_sqlite_url, access_log=False, **NO_LIMITS))
    return TestClient(app, base_url="http://127.0.0.1")


def test_landing_page_is_a_readable_page_linking_docs_document_and_health(
    client: TestClient,
) -> None:
    """``/`` was a 404; it is now an HTML page with a language, a title, a heading and the
    four links a newcomer needs, and nothing from another host."""
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["request-id"].startswith("req_")
    page = elements(response.text)
    assert page.attribute("html", "lang") == ["en"]
    assert re.search(r"<title>[^<]*Overplane[^<]*</title>", response.text)
    assert [t for t, _ in page.tags if t == "h1"] == ["h1"]
    assert page.attribute("a", "href") == LANDING_LINKS
    assert page.attribute("script", "src") == []
    assert all(href.startswith("/static/") for href in page.attribute("link", "href"))
    csp = policy(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["style-src"] == ["'self'"]


def test_docs_page_uses_only_same_origin_files_under_a_strict_policy(client: TestClient) -> None:
    """``/docs`` names only files under /static, has no inline script, and its policy admits
    no other host and no inline or evaluated script."""
    response = client.get("/docs")
    assert response.status_code == 200
    page = elements(response.text)
    assert not page.inline_script
    assets = page.attribute("script", "src") + page.attribute("link", "href")
    assert assets == [
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/docs.js",
        "/static/swagger-ui/swagger-ui.css",
    ]
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["cache-control"] == "no-cache"
    assert "://" not in response.text

    csp = policy(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:"}
    assert {source for sources in csp.values() for source in sources} <= allowed
    assert "'unsafe-inline'" in csp["style-src"]  # Swagger UI sets style attributes


@pytest.mark.parametrize("path", ["/", "/docs", "/dashboard/sign-in"])
def test_every_html_page_carries_the_security_headers(client: TestClient, path: str) -> None:
    """Each HTML page: a CSP, no MIME sniffing, no referrer to other sites, and framing
    denied twice (CSP ``frame-ancestors 'none'`` and, for browsers before CSP level 2,
    ``X-Frame-Options: DENY``)."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] in {"no-referrer", "same-origin"}
    assert response.headers["x-frame-options"] == "DENY"
    csp = policy(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]


def test_docs_script_keeps_the_key_in_memory_and_calls_no_validator(client: TestClient) -> None:
    """The start-up script turns off the two Swagger UI defaults that would store the key or
    send the document to another host."""
    script = client.get("/static/docs.js").text
    assert re.search(r"\bpersistAuthorization:\s*false\b", script)
    assert re.search(r"\bvalidatorUrl:\s*null\b", script)
    assert 'url: "/openapi.json"' in script


@pytest.mark.parametrize(
    "path",
    ["/static/missing.js", "/static/swagger-ui/missing.css", "/static", "/static/swagger-ui"],
)
def test_a_missing_static_file_is_the_usual_route_missing_error(
    client: TestClient, path: str
) -> None:
    """A file that is not there is a 404 ``route_missing`` error body like any unknown URL."""
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "route_missing"
    assert error["request_id"] == response.headers["request-id"]


def test_static_files_refuse_writes_with_the_usual_error(client: TestClient) -> None:
    """Only GET and HEAD reach a static file; anything else is 405 with ``Allow``."""
    response = client.post("/static/docs.js")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD"
    assert client.head("/static/docs.js").status_code == 200


def test_vendored_swagger_ui_is_byte_for_byte_what_its_checksums_record() -> None:
    """The vendored files are unmodified copies of the pinned release, licences included."""
    recorded = {}
    for line in (SWAGGER_UI / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        recorded[name] = digest
    actual = {
        name: hashlib.sha256((SWAGGER_UI / name).read_bytes()).hexdigest() for name in recorded
    }
    assert actual == recorded
    assert {"LICENSE", "NOTICE", "swagger-ui-bundle.js", "swagger-ui.css"} <= set(recorded)
    version = (SWAGGER_UI / "VERSION").read_text().strip()
    assert re.fullmatch(r"5\.\d+\.\d+", version)
    assert version in (SWAGGER_UI / "README.md").read_text()


# --- In a real browser ------------------------------------------------------------------------


@dataclass
class Traffic:
    """Every request the browser made, and those refused because they left the server."""

    host: str
    requested: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        """Let a request to the server through; abort any other."""
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).netloc == self.host:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; a clear failure if it is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}; on Debian or Ubuntu install it with "
            "'apt-get update && apt-get install -y chromium' (as root), or point "
            "OVERPLANE_TEST_CHROMIUM at another Chromium; deselect them with -m 'not slow'"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(tmp_sqlite_url: str, start_server: ServerLauncher) -> RunningServer:
    """A real server on a new SQLite database; it prints the new installation's test key.

    SQLite only: what is under test is the page and its files, which never touch the database,
    and the one API request the page sends is covered on both backends by the other tests; a
    browser costs seconds on a small machine, so it runs once.
    """
    return start_server(tmp_sqlite_url)


@pytest.fixture
def offline_page(browser: Browser, served: RunningServer) -> Iterator[tuple[Page, Traffic]]:
    """A fresh browser context whose every request to anything but the server is refused."""
    traffic = Traffic(host=urlsplit(served.base_url).netloc)
    context = browser.new_context(service_workers="block", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    context.route("**/*", traffic.route)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    try:
        yield page, traffic
    finally:
        context.close()


def storage_and_cookies(page: Page) -> str:
    """Everything the page's origin keeps in the browser, as one string."""
    stored: str = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    return stored + repr(page.context.cookies())


@pytest.mark.slow
def test_docs_render_authorize_and_try_a_request_offline(
    served: RunningServer, offline_page: tuple[Page, Traffic], tmp_path: Path
) -> None:
    """A newcomer's first minutes: open /docs with no internet, authorize with the printed key,
    run "Try it out"; no request leaves the server and the key is not kept."""
    page, traffic = offline_page
    key = served.stdout_lines()[-1]
    assert key.startswith("sk_test_")
    errors: list[str] = []

    def record_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record_error)
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(served.base_url + "/docs")
    operation = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/crm/appointment"]')
    )
    operation.wait_for()
    page.get_by_text("/api/accounts/party-link", exact=True).first.wait_for()
    page.screenshot(path=tmp_path / "docs-page.png")

    # Swagger UI marks the button "unlocked" until a key is set, then "locked".
    authorize = page.locator(".auth-wrapper button.authorize")
    expect(authorize).to_have_class(UNLOCKED)
    authorize.click()
    page.locator("#auth-bearer-value").fill(key)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    expect(authorize).to_have_class(LOCKED)

    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")  # the server answers 401 without the key
    expect(operation.locator(".live-responses-table")).to_contain_text('"has_more": false')
    page.screenshot(path=tmp_path / "docs-page-tried.png")

    assert key not in storage_and_cookies(page)
    page.reload()
    expect(authorize).to_have_class(UNLOCKED)  # a reload forgets the key
    assert key not in storage_and_cookies(page)

    assert page.evaluate("() => window.__cspViolations") == []
    assert errors == []
    assert traffic.refused == []
    hosts = {urlsplit(url).netloc for url in traffic.requested}
    assert hosts == {traffic.host}
    paths = {urlsplit(url).path for url in traffic.requested}
    assert {"/docs", "/openapi.json", "/static/docs.js", "/api/crm/appointment"} <= paths


@pytest.mark.slow
def test_landing_page_links_resolve_offline(
    served: RunningServer, offline_page: tuple[Page, Traffic]
) -> None:
    """Every link of ``/`` answers 200 on a running server, and following the docs link in
    the browser renders the docs."""
    page, traffic = offline_page
    response = page.goto(served.base_url + "/")
    assert response is not None
    assert response.status == 200
    assert page.title() == "Overplane API server"
    assert page.get_by_role("heading", level=1).inner_text() == "Overplane API server"
    links = page.locator("a").evaluate_all("(links) => links.map((a) => a.href)")
    assert [urlsplit(link).path for link in links] == LANDING_LINKS
    for link in links:
        assert urlsplit(link).netloc == traffic.host
        assert httpx.get(link, timeout=10, follow_redirects=True).status_code == 200, link
    page.get_by_role("link", name="Interactive documentation").click()
    page.locator('.opblock-summary-path[data-path="/api/crm/appointment"]').first.wait_for()
    assert page.evaluate("() => window.__cspViolations") == []
    assert traffic.refused == []
