"""``/docs`` and ``/redoc`` in headless Chromium with every other host blocked: they render from the app's own
assets, "Authorize" takes a key and "Try it out" on ``GET /v1/searches`` answers 200.

Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.ui.conftest import Server

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@dataclass
class Offline:
    """A page of a context whose requests to any host but the app's are aborted: what it asked other hosts for
    (``foreign``), its uncaught errors and its console's error messages."""

    context: Any
    page: Any
    foreign: list[str]
    errors: list[str]
    console: list[str]


def open_offline(browser: Any, server: Server, path: str) -> Offline:
    """The app's ``path`` in a new offline context (see :class:`Offline`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    own = urlsplit(server.base).netloc
    foreign: list[str] = []
    errors: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == own:
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", route)
    context.on("weberror", lambda error: errors.append(str(error.error)))
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.base}{path}")
    return Offline(context, page, foreign, errors, console)


def test_swagger_ui_offline_authorize_and_try_it_out(server: Server, browser: Any, artifacts: Path) -> None:
    offline = open_offline(browser, server, "/docs")
    page = offline.page
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 8
    expect(page.locator("#operations-searches-list_my_searches_v1_searches_get")).to_be_visible()

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").first.fill(server.alice)
    dialog.locator(".auth-btn-wrapper button.authorize").click()
    expect(dialog.locator(".auth-btn-wrapper")).to_contain_text("Logout")
    dialog.locator(".auth-btn-wrapper button.btn-done").click()

    block = page.locator("#operations-searches-list_my_searches_v1_searches_get")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/searches") as info:
        block.get_by_role("button", name="Execute").click()
    response = info.value
    assert response.status == 200
    assert response.request.headers["authorization"] == f"Bearer {server.alice}"
    expect(block.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    page.screenshot(path=str(artifacts / "10-docs-try-it-out.png"), full_page=False)
    assert offline.foreign == [], f"/docs asked other hosts: {offline.foreign}"
    assert not [m for m in offline.console if "Content Security Policy" in m], offline.console
    assert offline.errors == []
    offline.context.close()


def test_redoc_renders_offline(server: Server, browser: Any, artifacts: Path) -> None:
    offline = open_offline(browser, server, "/redoc")
    page = offline.page
    expect(page.get_by_role("heading", name="Submit a search").first).to_be_visible()
    expect(page.get_by_role("heading", name="List trials").first).to_be_visible()
    page.screenshot(path=str(artifacts / "11-redoc.png"))
    assert offline.foreign == [], f"/redoc asked other hosts: {offline.foreign}"
    # The CSP blocks what ReDoc would fetch or inline by itself (its logo on a CDN, two style attributes), and
    # nothing else fails.
    assert [m for m in offline.console if "Content Security Policy" not in m and "404" not in m] == []
    assert offline.errors == []
    offline.context.close()
