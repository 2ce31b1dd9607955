"""The dashboard's pages and assets over the ASGI app (no browser): routes, headers, no CDN, accessible markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dropsearch.api.app import create_app
from dropsearch.api.ui.routes import PAGES_DIR, STATIC_DIR, render_page
from tests.api.conftest import make_settings

PAGES = {"/ui/": "searches.html", "/ui/searches/abc123": "search.html"}
SVG_NS = "http://www.w3.org/2000/svg"


class Markup(HTMLParser):
    """Collects the elements of a page as (tag, attrs, text inside) for markup checks."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.open: list[int] = []
        self.context: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), list(self.context)))
        if tag not in ("input", "meta", "link", "br", "img"):
            self.open.append(len(self.elements) - 1)
            self.context.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open:
            self.open.pop()
            self.context.pop()

    def handle_data(self, data: str) -> None:
        for index in self.open:
            self.elements[index][1].setdefault("#text", "")
            self.elements[index][1]["#text"] = (self.elements[index][1]["#text"] or "") + data


def parse(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    return markup


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path), migrate=False)
    return TestClient(app)


def test_root_redirects_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", list(PAGES))
def test_pages_are_static_shells_with_a_strict_policy(client: TestClient, path: str) -> None:
    response = client.get(path)  # no key: the page itself holds no data, its script asks for a key
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == render_page(PAGES[path])  # the page's file, its shared fragments included
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "current"), [("/ui/", "/ui/"), ("/ui/new", "/ui/new"), ("/ui/searches/abc123", None), ("/docs", None)]
)
def test_pages_include_their_shared_fragments(client: TestClient, path: str, current: str | None) -> None:
    html = client.get(path).text
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">') and "<!--#include" not in html
    marked = re.findall(r'<a href="([^"]+)" aria-current="page">', html)
    assert marked == ([current] if current else [])
    if path.startswith("/ui/"):
        assert html.count('id="signin-form"') == 1 and html.count('class="skip-link"') == 1


def test_a_search_page_is_the_same_for_every_id(client: TestClient) -> None:
    assert client.get("/ui/searches/one").text == client.get("/ui/searches/someone-elses").text


def test_every_asset_a_page_names_is_served(client: TestClient) -> None:
    types = {".js": "text/javascript", ".css": "text/css"}
    for page in PAGES:
        assets = [
            attrs.get("src") or attrs.get("href")
            for tag, attrs, _ in parse(client.get(page).text).elements
            if tag in ("script", "link")
        ]
        assert len(assets) >= 3
        for asset in assets:
            assert asset and asset.startswith("/ui/static/"), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert response.headers["content-type"].startswith(types[Path(asset).suffix]), asset
    assert client.get("/ui/static/../routes.py").status_code == 404


def test_nothing_is_loaded_from_another_origin() -> None:
    files = [f for f in (*PAGES_DIR.iterdir(), *STATIC_DIR.iterdir()) if f.is_file()]  # vendor/: test_docs_browser
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for file in files:
        text = file.read_text().replace(SVG_NS, "")
        assert not re.search(r"https?://", text), file.name
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?//""", text), file.name


def test_the_key_is_kept_in_session_storage_only() -> None:
    scripts = "\n".join(f.read_text() for f in STATIC_DIR.glob("*.js"))
    assert "sessionStorage" in scripts and "localStorage" not in scripts and "document.cookie" not in scripts
    assert "new EventSource" not in scripts  # it cannot send the Authorization header
    assert "Authorization: `Bearer ${key}`" in scripts


@pytest.mark.parametrize("name", ["searches.html", "search.html"])
def test_markup_is_accessible(name: str) -> None:
    elements = parse(render_page(name)).elements
    html = next(attrs for tag, attrs, _ in elements if tag == "html")
    assert html.get("lang") == "en"
    labelled = {attrs.get("for") for tag, attrs, _ in elements if tag == "label"}
    inputs = [attrs for tag, attrs, _ in elements if tag == "input"]
    assert inputs and all(attrs.get("id") in labelled for attrs in inputs)
    buttons = [attrs for tag, attrs, _ in elements if tag == "button"]
    assert buttons and all((attrs.get("#text") or "").strip() for attrs in buttons)
    headers = [attrs for tag, attrs, context in elements if tag == "th" and "thead" in context]
    assert headers and all(attrs.get("scope") == "col" for attrs in headers)
    if name == "search.html":
        sortable = [attrs for attrs in headers if "data-key" in attrs]
        assert len(sortable) == 9 and all(attrs.get("aria-sort") in ("ascending", "none") for attrs in sortable)
        charts = [attrs for tag, attrs, _ in elements if tag == "svg"]
        assert len(charts) == 5 and all(a.get("role") == "img" and a.get("aria-labelledby") for a in charts)
    assert any(tag == "main" for tag, _, _ in elements)
    assert any(tag == "a" and attrs.get("class") == "skip-link" for tag, attrs, _ in elements)


def test_focus_is_always_visible() -> None:
    css = (STATIC_DIR / "app.css").read_text()
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid", css)
    assert "outline: none" not in css.replace("main:focus { outline: none; }", "")
