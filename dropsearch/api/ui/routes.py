"""Routes of the web dashboard (its HTML pages and static assets, ``/`` redirecting to ``/ui/``) and the API docs.

``/docs`` (Swagger UI) and ``/redoc`` use copies of ``swagger-ui-dist`` and ``redoc`` in ``static/vendor`` (with
their licenses), so the docs work without network access and under the dashboard's CSP.

The pages hold no data and need no key: their scripts ask for an API key, keep it in ``sessionStorage`` and
read everything from the authenticated ``/v1`` routes (the event stream with ``fetch``, since ``EventSource``
cannot send an ``Authorization`` header). A strict Content-Security-Policy allows only this origin, so nothing is
loaded from a CDN and the key can only be sent back to the API.

What the pages share (the ``<head>``'s first lines; the top bar, skip link and sign-in form) is written once, in
``pages/_*.html`` fragments: a page's line ``<!--#include _topbar.html current="/ui/new" -->`` stands for the
fragment's lines, with the nav link to ``current`` marked ``aria-current="page"`` (:func:`render_page`).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["PAGES_DIR", "SECURITY_HEADERS", "STATIC_DIR", "install_ui", "render_page", "router"]

PAGES_DIR = Path(__file__).with_name("pages")
STATIC_DIR = Path(__file__).with_name("static")

#: Headers of every page: same-origin only (no CDN, no inline script), not framed, no referrer, not cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


#: A whole line ``<!--#include <fragment> [current="<path>"] -->`` (its indentation and line end included).
_INCLUDE = re.compile(r'^[ \t]*<!--#include (?P<name>_[\w-]+\.html)(?: current="(?P<current>[^"]+)")? -->\n', re.M)


def render_page(name: str) -> str:
    """The HTML of ``pages/<name>`` with each include line replaced by its fragment (see the module's doc)."""

    def include(match: re.Match[str]) -> str:
        fragment = (PAGES_DIR / match["name"]).read_text(encoding="utf-8")
        if current := match["current"]:
            link = f'<a href="{current}">'
            if link not in fragment:
                raise ValueError(f"{name}: {match['name']} has no link to {current}")
            fragment = fragment.replace(link, f'<a href="{current}" aria-current="page">', 1)
        return fragment

    return _INCLUDE.sub(include, (PAGES_DIR / name).read_text(encoding="utf-8"))


def _page(name: str) -> HTMLResponse:
    return HTMLResponse(render_page(name), headers=SECURITY_HEADERS)


@router.get("/")
def root() -> RedirectResponse:
    """Send browsers to the dashboard."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def searches_page() -> HTMLResponse:
    """The caller's searches: status, progress and best reward."""
    return _page("searches.html")


@router.get("/ui/new")
def new_search_page() -> HTMLResponse:
    """A job spec editor (JSON or YAML, checked against the spec schema and the catalog); ``?from=<id>`` clones."""
    return _page("new.html")


@router.get("/docs")
def swagger_page() -> HTMLResponse:
    """Swagger UI of ``/openapi.json`` (assets served by this app: works offline, same CSP as the dashboard)."""
    return _page("docs.html")


@router.get("/redoc")
def redoc_page() -> HTMLResponse:
    """ReDoc of ``/openapi.json`` (assets served by this app).

    ReDoc (styled-components) writes ``<style>`` elements, which the CSP refuses unless they carry its nonce: this
    page's CSP is the dashboard's plus a fresh ``'nonce-...'`` for styles only, handed to ReDoc's ``nonce`` option.
    """
    nonce = secrets.token_urlsafe(18)
    html = render_page("redoc.html").replace("{{nonce}}", nonce)
    csp = SECURITY_HEADERS["Content-Security-Policy"].replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Content-Security-Policy": csp})


@router.get("/ui/searches/{search_id}")
def search_page(search_id: str) -> HTMLResponse:
    """One search, followed live (the script reads the id from the URL; another owner's search shows not-found)."""
    return _page("search.html")


def install_ui(app: FastAPI) -> None:
    """Add the dashboard's pages and ``/ui/static`` to ``app``."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
