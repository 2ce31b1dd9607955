"""The validation stage on the search page, in headless Chromium: the arms' error bars beside the search's rewards,
the table (mean, sd, n, paired gaps, beats noise), the conclusion, and validation runs marked in the trial table.

The first test follows a simulated stage live (``validation_updated`` events while the page is open); the second
runs a real search with a small validation stage on the real runner (local Ray, SQLite). Screenshots go to
``test-artifacts/ui/``; ``DROPSEARCH_UPDATE_DOCS_IMAGES=1`` also refreshes ``docs/images/validation.png``.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest

from dropsearch.client import Client
from dropsearch.search.validation import Arm
from tests.api import runner_sim
from tests.api.test_validation_views import NONE_PATTERN, SEEDS, VALUES
from tests.ui.conftest import Server
from tests.ui.test_new_pages import live  # noqa: F401  (fixture: the app and a real runner)

pytestmark = pytest.mark.slow

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "validation.png"
TIMEOUT_MS = 20_000


class expect:  # noqa: N801  (reads as Playwright's expect)
    """Playwright's ``expect`` with this module's timeout (the machine may be busy: assertions wait longer)."""

    def __init__(self, target: Any) -> None:
        from playwright.sync_api import expect as playwright_expect

        self._assertions = playwright_expect(target)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._assertions, name)
        return lambda *args, **kwargs: method(*args, **{"timeout": TIMEOUT_MS, **kwargs})


def open_page(server: Server, browser: Any, search_id: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else 0)
    page.goto(f"{server.base}/ui/searches/{search_id}")
    page.get_by_label("API key").fill(server.alice)
    page.get_by_role("button", name="Sign in").click()
    return context, page, errors


def table_rows(page: Any) -> dict[str, list[str]]:
    """The validation table's cells by arm."""
    return page.locator("#validation-table tbody tr").evaluate_all(
        "rs => Object.fromEntries(rs.map(r => [r.dataset.arm, [...r.cells].map(c => c.textContent.trim())]))"
    )


def intervals(page: Any) -> dict[str, tuple[float, float, float]]:
    """The reward chart's error bars: arm -> (mean, low, high)."""
    drawn = page.locator("#reward-chart g.chart-bar").evaluate_all(
        "gs => gs.map(g => [g.dataset.name, Number(g.dataset.mean), Number(g.dataset.low), Number(g.dataset.high)])"
    )
    return {name: (mean, low, high) for name, mean, low, high in drawn}


def test_validation_stage_appears_live(server: Server, browser: Any, artifacts: Path) -> None:
    spec = runner_sim.spec("validated-live", validation={"top_k": 2, "seeds": 3}, trials=3, epochs_per_trial=2)
    headers = {"Authorization": f"Bearer {server.alice}"}
    sid = httpx.post(f"{server.base}/v1/searches", json=spec, headers=headers, timeout=60).json()["id"]
    runner_sim.claim(server.engine, sid)
    for index, reward in enumerate([0.6, 0.9, 0.85]):
        runner_sim.run_trial(server.engine, sid, index, reward)
    context, page, errors = open_page(server, browser, sid)
    expect(page.locator("#trials-table tbody tr")).to_have_count(3)
    expect(page.locator("#stream-state")).to_have_text("live")
    assert page.locator("#validation").is_hidden()

    arms = [
        Arm("search-1", runner_sim.pattern(rate=0.1), "search", 0.9, 1),
        Arm("search-2", runner_sim.pattern(rate=0.3), "search", 0.85, 2),
        Arm("none", NONE_PATTERN, "baseline"),
    ]
    report = runner_sim.run_validation(server.engine, sid, arms, VALUES, seeds=SEEDS)
    expect(page.locator("#validation")).to_be_visible()
    expect(page.locator("#live-log")).to_have_text("Validation finished: best mean so far search-1")
    expect(page.locator("#validation-conclusion")).to_have_text(report["conclusion"])
    expect(page.locator("#validation-state")).to_have_text("running")  # the search has not ended yet
    cells = table_rows(page)
    assert list(cells) == ["search-1", "search-2", "none"]
    assert cells["search-1"][:5] == ["search-1 chosen", "search", "0.82", "0.02", "3"]
    assert cells["search-1"][5:] == ["+0.1067 [+0.09232, +0.121]", "yes", ""]  # gap by hand: 0.10, 0.11, 0.11
    assert cells["search-2"][2:] == ["0.71", "0.01414", "2", "-0.005 [-0.06853, +0.05853]", "no", "1 failed"]
    assert cells["none"][1:5] == ["baseline", "0.7133", "0.01528", "3"] and cells["none"][5:7] == ["", ""]
    header = page.locator("#validation-table thead th").all_inner_texts()
    assert header == ["Arm", "Origin", "Mean", "SD", "n", "Gap vs none (95%)", "Beats none", "Notes"]

    # the arms' error bars (mean ± sd) beside the search trials, right of the divider
    expect(page.locator("#reward-chart g.chart-bar")).to_have_count(3)
    bars = intervals(page)
    assert bars["search-1"] == pytest.approx((0.82, 0.80, 0.84))
    none_mean, none_sd = statistics.fmean(VALUES["none"]), statistics.stdev(VALUES["none"])
    assert bars["none"] == pytest.approx((none_mean, none_mean - none_sd, none_mean + none_sd))
    assert page.locator('#reward-chart g[data-label="trial"]').get_attribute("data-points") == "3"
    last_dot, divider, first_bar = page.locator("#reward-chart").evaluate(
        "svg => [Math.max(...[...svg.querySelectorAll('g.chart-dots circle')].map(c => +c.getAttribute('cx'))),"
        " +svg.querySelector('line.chart-divider').getAttribute('x1'),"
        " Math.min(...[...svg.querySelectorAll('g.chart-bar line')].map(l => +l.getAttribute('x1')))]"
    )
    assert last_dot < divider < first_bar  # the arms stand right of the dashed line, the trials left of it

    # validation runs are marked in the trial table (kind, arm, seed); curves and masks show the search trials only
    expect(page.locator('#trials-table tbody tr[data-kind="validation"]')).to_have_count(9)
    marked = page.locator('#trials-table tbody tr[data-kind="validation"]').evaluate_all(
        "rs => rs.map(r => [Number(r.dataset.index), r.dataset.arm, Number(r.dataset.seed), r.cells[1].textContent])"
    )
    expected = [(seed, arm) for seed in SEEDS for arm in ("search-1", "search-2", "none")]
    assert [(m[2], m[1]) for m in sorted(marked)] == expected
    assert all(text == f"validation · {arm} · seed {seed}" for _, arm, seed, text in marked)
    assert page.locator('#trials-table tbody tr[data-kind="search"]').count() == 3
    expect(page.locator("#curves-chart g.curve")).to_have_count(3)

    runner_sim.finish(server.engine, sid)
    expect(page.locator("#search-status")).to_have_text("succeeded")
    expect(page.locator("#validation-state")).to_have_text("done")
    page.locator("#validation").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "30-validation-live.png"), full_page=True)
    assert errors == []
    context.close()


SPEC = {
    "name": "digits-validated",
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock"], "rates": [0.1, 0.3, 0.5]},
    "controller": {"name": "reinforce", "batch_size": 2},
    "budget": {"trials": 4, "epochs_per_trial": 3, "max_concurrent": 2},
    "training": {"lr": 0.01},
    "validation": {"top_k": 1, "seeds": 2},
}


def test_a_real_search_shows_its_validation_stage(live: Server, browser: Any, artifacts: Path) -> None:  # noqa: F811
    with Client(live.base, live.alice) as client:
        sid = client.submit(SPEC)["id"]
        search = client.wait(sid, timeout=600, poll_s=0.5)
        assert search["status"] == "succeeded", search.get("error")
        trials = client.all_trials(sid)
        best = client.best(sid)
    report = search["validation"]
    assert report is not None and report["chosen"] in {a["name"] for a in report["arms"]}
    names = [a["name"] for a in report["arms"]]
    assert names[-1] == "none" and len(names) == 2  # the top pattern and no dropout
    runs = [t for t in trials if t["kind"] == "validation"]
    assert len(runs) == 4 and {(t["arm"], t["seed"]) for t in runs} == {
        (name, seed) for name in names for seed in report["seeds"]
    }
    assert best["provenance"]["validated"] is True and best["validation"] == report

    context, page, errors = open_page(live, browser, sid)
    expect(page.locator("#search-status")).to_have_text("succeeded")
    expect(page.locator("#validation")).to_be_visible()
    expect(page.locator("#validation-conclusion")).to_have_text(report["conclusion"])
    expect(page.locator("#validation-state")).to_have_text("done")
    cells = table_rows(page)
    assert list(cells) == names
    for arm in report["arms"]:
        row = cells[arm["name"]]
        assert row[0] == arm["name"] + (" chosen" if arm["name"] == report["chosen"] else "")
        assert row[4] == str(arm["n"]) and float(row[2]) == pytest.approx(arm["mean"], rel=1e-3)
    gap = report["arms"][0]["gaps"]["none"]
    verdict = "yes" if gap["beats_noise"] else ("worse" if gap["worse_beyond_noise"] else "no")
    assert cells[names[0]][6] == verdict
    with_mean = [a for a in report["arms"] if a["mean"] is not None]
    expect(page.locator("#reward-chart g.chart-bar")).to_have_count(len(with_mean))
    for arm in with_mean:
        assert intervals(page)[arm["name"]][0] == pytest.approx(arm["mean"])
    expect(page.locator('#trials-table tbody tr[data-kind="validation"]')).to_have_count(4)
    expect(page.locator("#stream-state")).to_have_text("search finished")  # every event replayed (controller charts)

    page.locator("#charts-title").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "31-validation-real.png"), full_page=True)
    page.locator("#validation").screenshot(path=str(artifacts / "32-validation-table.png"))
    if os.environ.get("DROPSEARCH_UPDATE_DOCS_IMAGES"):  # the reward chart down to the validation table
        top, bottom = page.evaluate(
            "() => { const y = (id) => document.getElementById(id).getBoundingClientRect();"
            " return [y('reward-chart').top + window.scrollY - 8, y('validation').bottom + window.scrollY + 8]; }"
        )
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(DOCS_IMAGE), full_page=True, clip={"x": 0, "y": top, "width": 1280, "height": bottom - top}
        )
    assert errors == []
    context.close()
