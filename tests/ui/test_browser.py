"""The dashboard in headless Chromium against a server on loopback: sign in, follow a running search live, sort,
download the best pattern, cancel; another owner's search is not found; a page without a key asks for one.

Screenshots are written to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from dropsearch.client import parse_sse
from tests.ui.conftest import Server
from tests.ui.live_runner import LiveRunner

pytestmark = pytest.mark.slow

SPEC = {
    "model": {"name": "convnet"},
    "dataset": {"name": "digits"},
    "budget": {"trials": 6, "epochs_per_trial": 2},
    "validation": {"enabled": False},  # this test counts the search trials only
}
TIMEOUT_MS = 15_000


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def submit(server: Server, key: str, name: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{server.base}/v1/searches", json={"name": name, **SPEC}, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def luminance(rgb: list[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0..255 channels)."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(fg: list[float], bg: list[float]) -> float:
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# Text colour and the first opaque background behind it, as [r, g, b].
_COLOURS_JS = """(selector) => [...document.querySelectorAll(selector)].filter((e) => e.offsetParent).map((e) => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  let node = e, bg = null;
  while (node && node.nodeType === 1) {
    const c = getComputedStyle(node).backgroundColor;
    const alpha = c.startsWith("rgba") ? Number(c.match(/[\\d.]+/g)[3]) : 1;
    if (alpha > 0.5) { bg = rgb(c); break; }
    node = node.parentElement;
  }
  return { fg: rgb(getComputedStyle(e).color), bg: bg || [255, 255, 255], text: e.textContent.trim().slice(0, 30) };
})"""


def check_contrast(page: Any, selectors: list[str]) -> int:
    checked = 0
    for selector in selectors:
        for item in page.evaluate(_COLOURS_JS, selector):
            ratio = contrast(item["fg"], item["bg"])
            assert ratio >= 4.5, f"{selector} {item}: contrast {ratio:.2f} < 4.5"
            checked += 1
    return checked


def rows(page: Any) -> list[int]:
    return [int(i) for i in page.locator("#trials-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.index)")]


def test_dashboard_end_to_end(server: Server, browser: Any, artifacts: Path) -> None:
    sid = submit(server, server.alice, "live-search")
    runner = LiveRunner(server.engine, sid)
    runner.start()
    runner.run_trial(0, 0.5, rate=0.1)
    runner.run_trial(1, 0.62, variant="dropblock", rate=0.3)
    submit(server, server.alice, "queued-search")
    bobs = submit(server, server.bob, "bobs-search")

    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    errors: list[str] = []  # script errors and console errors (a CSP violation is one), but not HTTP statuses
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else 0)

    # Sign in (a wrong key is refused and named).
    page.goto(f"{server.base}/")
    assert page.url == f"{server.base}/ui/"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("invalid API key")
    page.screenshot(path=str(artifacts / "01-sign-in.png"))
    page.get_by_label("API key").fill(server.alice)
    page.get_by_role("button", name="Sign in").click()
    table = page.locator("#searches-table tbody tr")
    expect(table).to_have_count(2)
    expect(page.get_by_role("link", name="live-search")).to_be_visible()
    expect(page.get_by_role("link", name="bobs-search")).to_have_count(0)
    expect(page.locator(f'tr[data-search-id="{sid}"] .badge')).to_have_text("running")
    page.screenshot(path=str(artifacts / "02-searches.png"))

    # Open the running search: history from the JSON routes and the replayed stream.
    page.get_by_role("link", name="live-search").click()
    page.wait_for_url(f"{server.base}/ui/searches/{sid}")
    expect(page.locator("#stream-state")).to_have_text("live")
    expect(page.locator("#trials-table tbody tr")).to_have_count(2)
    expect(page.locator("#entropy-chart .chart-series")).to_have_attribute("data-points", "2")
    assert page.get_by_role("link", name="Ray dashboard").get_attribute("href") == "http://ray.example:8265"

    # A new trial appears live, with its controller update, progress and best reward.
    runner.run_trial(2, 0.91, rate=0.25)
    new_row = page.locator('#trials-table tbody tr[data-index="2"]')
    expect(new_row).to_contain_text("succeeded")
    expect(new_row).to_contain_text("0.91")
    expect(new_row).to_contain_text("node-a")
    expect(new_row).to_have_class("best")
    expect(page.locator("#best-reward")).to_have_text("0.91")
    expect(page.locator("#progress-text")).to_contain_text("3 of 6 trials done")
    assert page.locator("#progress").evaluate("p => [p.value, p.max]") == [3, 6]
    expect(page.locator("#reward-chart .chart-dots")).to_have_attribute("data-points", "3")
    expect(page.locator("#reward-chart .chart-step")).to_have_attribute("data-points", "3")
    expect(page.locator("#entropy-chart .chart-series")).to_have_attribute("data-points", "3")
    expect(page.locator("#baseline-chart .chart-series")).to_have_count(2)
    expect(page.locator("#live-log")).to_contain_text("Controller update 3")
    cells = new_row.locator("td").all_inner_texts()
    assert cells[:6] == ["search", "autodropout", "0.25", "0.91 best", "2", cells[5]] and float(cells[5]) >= 0

    # Pictures of the best masks, best first (fetched with the key, shown as blob: images).
    masks = page.locator("#masks figure")
    expect(masks).to_have_count(3, timeout=60_000)
    expect(masks.first.locator("figcaption")).to_contain_text("Best: trial 2")
    page.wait_for_function("[...document.querySelectorAll('#masks img')].every(i => i.complete && i.naturalWidth > 0)")
    assert all(src.startswith("blob:") for src in masks.locator("img").evaluate_all("ims => ims.map(i => i.src)"))

    # Sort by reward with the keyboard; the header says how it is sorted; focus is visible.
    reward_button = page.get_by_role("button", name="Reward")
    reward_button.focus()
    page.keyboard.press("Enter")
    expect(page.locator('th[data-key="reward"]')).to_have_attribute("aria-sort", "ascending")
    assert rows(page) == [0, 1, 2]
    page.keyboard.press("Enter")
    expect(page.locator('th[data-key="reward"]')).to_have_attribute("aria-sort", "descending")
    expect(page.locator('th[data-key="index"]')).to_have_attribute("aria-sort", "none")
    assert rows(page) == [2, 1, 0]
    page.keyboard.press("Tab")
    style = "() => [getComputedStyle(document.activeElement)].map((s) => [s.outlineStyle, s.outlineWidth])"
    assert page.evaluate(style) == [["solid", "3px"]]
    assert check_contrast(page, ["body", ".muted", "button:not(:disabled)", ".badge", "thead th button", "main a"]) > 10

    # Download the best pattern: the file is exactly GET /v1/searches/{id}/best.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download best pattern").click()
    download = info.value
    best = httpx.get(f"{server.base}/v1/searches/{sid}/best", headers={"Authorization": f"Bearer {server.alice}"})
    assert download.suggested_filename == "live-search-best-pattern.json"
    body = Path(download.path()).read_bytes()
    assert body == best.content and json.loads(body)["provenance"]["reward"] == 0.91
    download.save_as(str(artifacts / "best-pattern.json"))
    page.screenshot(path=str(artifacts / "03-search-live.png"), full_page=True)

    # Cancel: requested through the API, then the (simulated) runner stops the search; the page follows.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel search").click()
    expect(page.locator("#action-message")).to_have_text("Cancel requested.")
    expect(page.locator("#search-status")).to_have_text("running (cancel requested)")
    expect(page.get_by_role("button", name="Cancel search")).to_be_disabled()
    assert runner.honour_cancel()
    expect(page.locator("#search-status")).to_have_text("cancelled")
    expect(page.locator("#stream-state")).to_have_text("search finished")
    expect(page.locator("#live-log")).to_contain_text("Search cancelled")
    page.screenshot(path=str(artifacts / "04-search-cancelled.png"), full_page=True)

    # Another owner's search, and one that does not exist, look the same: not found.
    for other in (bobs, "no-such-search"):
        page.goto(f"{server.base}/ui/searches/{other}")
        expect(page.get_by_role("heading", name="Search not found")).to_be_visible()
        expect(page.locator("#content")).to_be_hidden()
        assert "bobs-search" not in page.content()
    page.screenshot(path=str(artifacts / "05-not-found.png"))

    # The key stayed in this tab's sessionStorage and in Authorization headers, never in a URL; no other origin.
    storage = page.evaluate("() => [sessionStorage.getItem('dropsearch.apiKey'), localStorage.length]")
    assert storage == [server.alice, 0]
    assert requests and all(r.url.startswith((server.base, "blob:", "data:")) for r in requests)
    assert not [r.url for r in requests if server.alice in r.url]
    assert errors == []
    streams = [r for r in requests if r.url.startswith(f"{server.base}/v1/searches/{sid}/events")]
    assert streams and all(r.all_headers()["authorization"] == f"Bearer {server.alice}" for r in streams)
    context.close()


def test_a_page_without_a_key_asks_for_one(server: Server, browser: Any, artifacts: Path) -> None:
    sid = submit(server, server.alice, "alices-search")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/v1/" in r.url else None)
    page.goto(f"{server.base}/ui/searches/{sid}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    expect(page.locator("#content")).to_be_hidden()
    assert api_calls == []
    page.screenshot(path=str(artifacts / "06-needs-key.png"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("Enter an API key.")
    page.get_by_label("API key").fill(server.bob)  # a valid key, but not the owner's
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Search not found")).to_be_visible()
    expect(page.locator("#content")).to_be_hidden()
    context.close()


def test_the_stream_parser_matches_the_python_client(server: Server, browser: Any) -> None:
    sid = submit(server, server.alice, "parsed")
    runner = LiveRunner(server.engine, sid)
    runner.start()
    runner.run_trial(0, 0.4)
    runner.finish()
    headers = {"Authorization": f"Bearer {server.alice}"}
    raw = httpx.get(f"{server.base}/v1/searches/{sid}/events", headers=headers, timeout=10).text
    expected = [
        {"event": e["event"], "id": None if e["id"] is None else str(e["id"]), "data": e["data"]}
        for e in parse_sse(iter(raw.split("\n")))
    ]
    assert [e["event"] for e in expected][-1] == "end" and len(expected) >= 7
    page = browser.new_page()
    page.goto(f"{server.base}/ui/searches/{sid}")  # loads sse.js (and shows the sign-in form)
    parse = """([text, sizes]) => {
      const out = [];
      const keep = (m) => out.push({ event: m.event, id: m.id, data: JSON.parse(m.data) });
      const push = DSStream.makeParser(keep, () => {});
      for (let i = 0, k = 0; i < text.length; k++) {
        const n = sizes[k % sizes.length];
        push(text.slice(i, i + n));
        i += n;
      }
      return out;
    }"""
    for text in (raw, raw.replace("\n", "\r\n"), raw.replace("\n", "\r")):
        for sizes in ([len(text)], [1], [3, 7, 2, 13]):
            assert page.evaluate(parse, [text + ": trailing comment\n\n", sizes]) == expected, (sizes, text[:20])
    page.close()
