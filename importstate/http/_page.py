"""The import page: plain HTML, CSS and JavaScript of this package, served without credentials.

The page holds nothing but itself: it logs in and reads everything through
the public REST API, so it shows nothing until its user has logged in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

#: Where the page's files are, inside the installed package.
PAGE_DIR: Final = Path(__file__).with_name("page")
#: The paths that serve the page itself.
PAGE_PATHS: Final = ("/", "/import")
#: Where its stylesheet and script are served.
ASSETS: Final = "/page"

# Scripts and styles from this server only: a value the API returns can never run as code.
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _index(_request: Request) -> Response:
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html", headers=_HEADERS)


def page_routes() -> list[BaseRoute]:
    """The page at each of :data:`PAGE_PATHS`, and its assets under :data:`ASSETS`."""
    routes: list[BaseRoute] = [Route(path, _index, methods=["GET"]) for path in PAGE_PATHS]
    routes.append(Mount(ASSETS, StaticFiles(directory=PAGE_DIR), name="page"))
    return routes
