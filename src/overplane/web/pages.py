"""The landing page, the docs page and the static files, as Starlette routes.

Every page and file comes from this package (``templates/`` and ``static/``), so a browser
showing them makes no request beyond this server; each page's Content-Security-Policy makes
sure of it. A missing static file raises Starlette's 404, which the application renders as its
usual ``route_missing`` error JSON.
"""

from __future__ import annotations

import os
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

#: The package whose ``templates/`` and ``static/`` folders are served.
PACKAGE = "overplane.web"
#: Where the static files are served from.
STATIC_PREFIX = "/static"

#: For the landing page: nothing but this server's own files, no scripts at all.
LANDING_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

#: For /docs. Scripts only from this server's files (the page has no inline script);
#: ``fetch`` only to this server. Swagger UI sets ``style`` attributes and draws its icons from
#: ``data:`` images in its stylesheet, hence the two exceptions; neither can reach another host.
#: ``frame-ancestors 'none'``: a page where secret keys are typed must not be framed.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _template(name: str) -> str:
    return (resources.files(PACKAGE) / "templates" / name).read_text(encoding="utf-8")


LANDING_PAGE = _template("landing.html")
DOCS_PAGE = _template("docs.html")


def _page_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # The docs page holds a secret key in memory; no URL of it is worth telling others.
        "Referrer-Policy": "no-referrer",
        # frame-ancestors 'none' in the policy denies framing; this says it to browsers that
        # predate CSP level 2 (clickjacking a page where keys are typed).
        "X-Frame-Options": "DENY",
    }


async def landing(request: Request) -> Response:
    """``/``: what this server is, with links to the docs, the OpenAPI document and the
    health checks."""
    return HTMLResponse(LANDING_PAGE, headers=_page_headers(LANDING_POLICY))


async def docs(request: Request) -> Response:
    """``/docs``: Swagger UI rendering ``/openapi.json``, entirely from this server."""
    return HTMLResponse(DOCS_PAGE, headers=_page_headers(DOCS_POLICY))


class PackageFiles(StaticFiles):
    """Starlette's static files, told to revalidate and not to sniff.

    The URLs stay the same across upgrades of the package (``/static/swagger-ui/…``), so a
    browser must ask again (a cheap 304 with the ETag) rather than guess how long its copy
    stays fresh and pair an old script with a new page.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def routes() -> list[BaseRoute]:
    """The routes of this layer, for the application's router."""
    return [
        Route("/", landing, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount(
            STATIC_PREFIX,
            app=PackageFiles(packages=[(PACKAGE, "static")]),
            name="static",
        ),
    ]
