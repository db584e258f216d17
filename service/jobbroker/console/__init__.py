"""The ops console at /ui: pages served by the broker whose scripts call the broker's own public
JSON API with the operator's API key. The console holds no credentials and reads no data itself,
so it can do nothing the API does not allow that key (see docs/console.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from string import Template

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "assets"
PREFIX = "/ui"
# Page name -> (title, navigation label or None for pages reached through another).
PAGES = {
    "queues": ("Queues", "Queues"),
    "keys": ("Queue keys", None),
    "jobs": ("Jobs", "Jobs"),
    "job": ("Job", None),
    "dlq": ("Dead letters", "DLQ"),
    "redrives": ("Redrives", "Redrives"),
    "schedules": ("Schedules", "Schedules"),
    "subscriptions": ("Subscriptions", "Subscriptions"),
    "audit": ("Audit log", "Audit"),
}
ROUTES = {
    "/ui/queues": "queues",
    "/ui/queues/{queue}/keys": "keys",
    "/ui/jobs": "jobs",
    "/ui/jobs/{id}": "job",
    "/ui/dlq": "dlq",
    "/ui/redrives": "redrives",
    "/ui/schedules": "schedules",
    "/ui/subscriptions": "subscriptions",
    "/ui/audit": "audit",
}
# The scripts come only from the broker and talk only to it; no inline script or style, no framing.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
SHELL = Template((ASSETS / "shell.html").read_text())


def _nav(current: str) -> str:
    links = []
    for page, (_, label) in PAGES.items():
        if label is None:
            continue
        here = (
            ' aria-current="page"'
            if page == current or (current, page) in {("job", "jobs"), ("keys", "queues")}
            else ""
        )
        links.append(f'<li><a href="{PREFIX}/{page}"{here}>{escape(label)}</a></li>')
    return "\n        ".join(links)


def render(page: str) -> str:
    title, _ = PAGES[page]
    return SHELL.substitute(title=escape(title), page=page, nav=_nav(page))


def _endpoint(page: str) -> Callable[[Request], Awaitable[Response]]:
    body = render(page)

    async def show(request: Request) -> Response:
        return HTMLResponse(body, headers=HEADERS)

    return show


async def _home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/queues", status_code=307)


def console_app() -> Starlette:
    """The console's pages and assets as their own ASGI app (no CDN: everything is served from this
    package). Not API operations: they take no key and stay out of the OpenAPI document."""
    routes: list[BaseRoute] = [Route("/", _home), Mount("/assets", StaticFiles(directory=ASSETS), name="assets")]
    routes += [Route(path.removeprefix(PREFIX), _endpoint(page), name=page) for path, page in ROUTES.items()]
    return Starlette(routes=routes)


def install(app: FastAPI) -> None:
    app.router.routes.append(Route(PREFIX, _home))
    app.mount(PREFIX, console_app(), name="console")
