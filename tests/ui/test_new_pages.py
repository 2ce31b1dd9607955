"""The dashboard on a search driven by the REAL runner (local Ray, SQLite, real HTTP), in headless Chromium:
learning curves of every trial (early-stopped ones end early, dashed), rewards per variant with tooltips, trials as
CSV, then "clone" into the new-search form, a spec error caught in the browser before anything is sent, a YAML spec
submitted from the form, and the new search run to its end by the runner.

Screenshots go to ``test-artifacts/ui/``; ``DROPSEARCH_UPDATE_DOCS_IMAGES=1`` also refreshes
``docs/images/search-page.png`` (the picture in the README).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropsearch.api.app import create_app
from dropsearch.client import Client
from dropsearch.runner import Runner
from dropsearch.search.spec import SearchSpec
from dropsearch.store.db import make_engine
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve
from tests.store.conftest import sqlite_template  # noqa: F401  (fixture)
from tests.ui.conftest import Server

pytestmark = pytest.mark.slow

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "search-page.png"
TIMEOUT_MS = 20_000
SPEC = {
    "name": "digits-curves",
    "model": {"name": "convnet", "params": {"widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "space": {"variants": ["bernoulli", "dropblock", "autodropout"], "rates": [0.0, 0.1, 0.3, 0.5]},
    "controller": {"name": "reinforce", "batch_size": 4},
    "budget": {"trials": 8, "epochs_per_trial": 4, "max_concurrent": 2, "early_stopping": "asha"},
    "training": {"lr": 0.003},
}
if "validation" in SearchSpec.model_fields:  # the post-search validation stage re-trains the best; not tested here
    SPEC["validation"] = {"enabled": False}


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[Server]:  # noqa: F811
    """The app and a real runner (local Ray with 2 CPUs) on one SQLite file."""
    import ray

    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    settings = make_settings(url, tmp_path, heartbeat_s=1.0, lease_timeout_s=10.0, ray_num_cpus=2)
    engine = make_engine(url)
    alice, bob = make_key(engine, "alice"), make_key(engine, "bob")
    app = create_app(settings, migrate=False, sse_poll_s=0.1, sse_keepalive_s=1.0)
    ray.shutdown()
    runner = Runner(settings, poll_s=0.2)
    runner.start()
    try:
        with serve(app) as base:
            yield Server(base, engine, alice, bob)
    finally:
        runner.stop()
        engine.dispose()
        ray.shutdown()


def test_curves_of_a_real_search_then_clone_submit_and_run(live: Server, browser: Any, artifacts: Path) -> None:
    with Client(live.base, live.alice) as client:
        sid = client.submit(SPEC)["id"]
        assert client.wait(sid, timeout=600, poll_s=0.5)["status"] == "succeeded"
        trials = client.all_trials(sid)
    assert len(trials) == 8
    stopped = [t for t in trials if t["status"] == "stopped"]
    for t in stopped:
        assert len(t["metrics"]) < SPEC["budget"]["epochs_per_trial"]

    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else 0)
    requests: list[Any] = []
    page.on("request", lambda r: requests.append(r))
    page.goto(f"{live.base}/ui/searches/{sid}")
    page.get_by_label("API key").fill(live.alice)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#search-status")).to_have_text("succeeded")

    # Learning curves: one line per trial with its epochs; stopped ones dashed, ending early, with a cross.
    curves = page.locator("#curves-chart g.curve")
    expect(curves).to_have_count(8)
    expect(page.locator("#curve-metric")).to_have_value("val_accuracy")
    drawn = curves.evaluate_all(
        "gs => gs.map(g => [Number(g.dataset.index), g.dataset.status, Number(g.dataset.epochs),"
        " g.querySelector('path').getAttribute('stroke-dasharray'), g.querySelectorAll('.curve-stop-mark').length,"
        " g.querySelector('title').textContent])"
    )
    by_index = {t["index"]: t for t in trials}
    for index, status, epochs, dash, marks, title in drawn:
        trial = by_index[index]
        assert status == trial["status"] and epochs == len(trial["metrics"])
        assert title.startswith(f"trial {index} · {trial['pattern']['variant']} · {status}")
        assert (dash is not None, marks) == ((True, 1) if status == "stopped" else (False, 0))
    assert page.locator("#curves-chart").get_attribute("data-stopped") == str(len(stopped))
    page.select_option("#curve-metric", "val_loss")
    expect(page.locator("#curves-chart g.curve").first.locator("title")).to_contain_text("val_loss")
    page.select_option("#curve-metric", "val_accuracy")

    # Rewards per variant: every rewarded trial is a dot in its variant's column, with a tooltip.
    dots = page.locator("#variant-chart .strip circle")
    rewarded = [t for t in trials if t["reward"] is not None]
    expect(dots).to_have_count(len(rewarded))
    per_variant = page.locator("#variant-chart .strip").evaluate_all(
        "gs => Object.fromEntries(gs.map(g => [g.dataset.variant, Number(g.dataset.points)]))"
    )
    expected: dict[str, int] = {}
    for t in rewarded:
        expected[t["pattern"]["variant"]] = expected.get(t["pattern"]["variant"], 0) + 1
    assert per_variant == expected
    best = max(rewarded, key=lambda t: t["reward"])  # objective mode max (val_accuracy)
    assert page.locator(f'#variant-chart circle[data-index="{best["index"]}"] title').text_content().endswith("(best)")
    page.locator("#curves-title").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "20-search-curves.png"), full_page=True)
    page.locator("#curves-chart").screenshot(path=str(artifacts / "21-learning-curves.png"))
    if os.environ.get("DROPSEARCH_UPDATE_DOCS_IMAGES"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGE), full_page=True)

    # Trials as CSV: the download is one row per trial.
    with page.expect_download() as info:
        page.get_by_role("link", name="Trials as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [int(r["index"]) for r in rows] == list(range(8))

    # Clone into the form; a bad value is caught in the browser and nothing is sent.
    page.get_by_role("link", name="Clone into a new search").click()
    page.wait_for_url(f"{live.base}/ui/new?from={sid}")
    expect(page.locator("#clone-note")).to_contain_text(sid)
    expect(page.locator("#spec-status")).to_have_text("The spec is valid.")
    page.get_by_label("YAML").check()
    text = page.locator("#spec-editor").input_value()
    assert "name: digits-curves-copy" in text and "trials: 8" in text
    page.locator("#spec-editor").fill(
        text.replace("trials: 8", "trials: 0").replace("lr: 0.003", "lr: 0.003\n  colour: red")
    )
    posts_before = len([r for r in requests if r.method == "POST"])
    page.get_by_role("button", name="Submit search").click()
    problems = page.locator("#problems li")
    expect(problems.first).to_be_visible()
    texts = problems.all_inner_texts()
    assert any(p.startswith("budget.trials: must be >= 1") for p in texts), texts
    assert any(p.startswith("training.colour: unknown field") for p in texts), texts
    assert len([r for r in requests if r.method == "POST"]) == posts_before
    page.screenshot(path=str(artifacts / "22-new-search-invalid.png"), full_page=True)

    # Fixed: pick a smaller run from the catalog pickers, submit; the runner runs the new search.
    new_text = text.replace("trials: 8", "trials: 4").replace("name: digits-curves-copy", "name: from-the-form")
    new_text = new_text.replace("epochs_per_trial: 4", "epochs_per_trial: 2")
    page.locator("#spec-editor").fill(new_text)
    page.locator('#pick-variants input[value="bernoulli"]').check()
    page.locator('#pick-variants input[value="autodropout"]').uncheck()
    page.locator('#pick-variants input[value="dropblock"]').uncheck()
    page.get_by_role("button", name="Put these into the spec").click()
    expect(page.locator("#spec-status")).to_have_text("The spec is valid.")
    assert "- bernoulli" in page.locator("#spec-editor").input_value()
    page.screenshot(path=str(artifacts / "23-new-search-form.png"), full_page=True)
    page.get_by_role("button", name="Submit search").click()
    page.wait_for_url(f"{live.base}/ui/searches/*")
    new_id = page.url.rsplit("/", 1)[-1]
    assert new_id != sid
    expect(page.locator("#search-title")).to_have_text("from-the-form")
    expect(page.locator("#search-status")).to_have_text("succeeded", timeout=300_000)
    expect(page.locator("#curves-chart g.curve")).to_have_count(4)
    with Client(live.base, live.alice) as client:
        made = client.get(new_id)
    assert made["spec"]["space"]["variants"] == ["bernoulli"] and made["spec"]["budget"]["trials"] == 4
    assert {t["pattern"]["variant"] for t in client_trials(live, new_id)} == {"bernoulli"}
    page.screenshot(path=str(artifacts / "24-new-search-ran.png"), full_page=True)
    assert all(r.url.startswith((live.base, "blob:", "data:")) for r in requests)
    assert errors == []
    context.close()


def client_trials(live: Server, search_id: str) -> list[dict[str, Any]]:
    with Client(live.base, live.alice) as client:
        return client.all_trials(search_id)
