"""The validation stage as the API shows it: the search's table, validation trials (kind/arm/seed), CSV, plot, /best.

The stage is simulated through the store's own functions (``runner_sim.run_validation``), with the real report
(:class:`~dropsearch.search.validation_report.ValidationReport`); the numbers are checked against a hand computation.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Any

import pytest

from dropsearch.search.validation import Arm
from tests.api import runner_sim
from tests.api.conftest import Api
from tests.api.test_export import all_json_trials, check_csv_matches_json

T_975_2DF = 4.302652729749464  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)
NONE_PATTERN = {"format": "dropsearch.pattern/v1", "variant": "none", "sites": [], "params": {}, "provenance": {}}
SEEDS = (10_000, 10_001, 10_002)
VALUES: dict[str, list[float | None]] = {
    "search-1": [0.80, 0.82, 0.84],
    "search-2": [0.70, None, 0.72],  # one failed seed
    "none": [0.70, 0.71, 0.73],
}


def validated_search(api: Api, name: str = "validated") -> tuple[str, list[Arm]]:
    """A search of 4 trials then a validation stage (top 2 + no dropout, 3 seeds), finished."""
    spec = {
        "name": name,
        "model": {"name": "convnet"},
        "dataset": {"name": "digits"},
        "budget": {"trials": 4, "max_concurrent": 1},
        "validation": {"top_k": 2, "seeds": 3},
    }
    response = api.client.post("/v1/searches", json=spec, headers=api.auth())
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    assert response.json()["progress"]["trials_total"] == 4 + 3 * 3
    runner_sim.claim(api.engine, sid)
    for index, reward in enumerate([0.5, 0.9, 0.6, 0.85]):
        runner_sim.run_trial(api.engine, sid, index, reward)
    arms = [
        Arm("search-1", runner_sim.pattern(rate=0.1), "search", 0.9, 1),
        Arm("search-2", runner_sim.pattern(rate=0.3), "search", 0.85, 3),
        Arm("none", NONE_PATTERN, "baseline"),
    ]
    runner_sim.run_validation(api.engine, sid, arms, VALUES, seeds=SEEDS)
    runner_sim.finish(api.engine, sid)
    return sid, arms


def test_search_resource_carries_the_validation_table(sqlite_api: Api) -> None:
    api = sqlite_api
    sid, _ = validated_search(api)
    search = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    table = search["validation"]
    assert "pattern" not in table and table["chosen"] == "search-1" and table["chosen_beats"] == {"none": True}
    assert table["mode"] == "max" and table["metric"] == "val_accuracy" and table["seeds"] == list(SEEDS)
    assert search["progress"] == {"trials_done": 13, "trials_total": 13}
    assert search["best_reward"] == pytest.approx(0.9)  # the search's best trial; validation runs never count
    arms = {a["name"]: a for a in table["arms"]}
    assert list(arms) == ["search-1", "search-2", "none"]
    one, two, none = arms["search-1"], arms["search-2"], arms["none"]
    assert one["mean"] == pytest.approx(0.82) and one["sd"] == pytest.approx(0.02) and one["n"] == 3
    assert two["n"] == 2 and two["failed_seeds"] == [10_001] and two["mean"] == pytest.approx(0.71)
    assert [r["seed"] for r in two["results"]] == [10_000, 10_002]
    assert none["origin"] == "baseline" and none["gaps"] == {}

    # the paired gap of search-1 over no dropout, by hand: differences 0.10, 0.11, 0.11
    diffs = [a - b for a, b in zip(VALUES["search-1"], VALUES["none"], strict=True)]
    mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(3)
    gap = one["gaps"]["none"]
    assert gap["mean"] == pytest.approx(mean) and gap["se"] == pytest.approx(se) and gap["n"] == 3
    assert gap["low"] == pytest.approx(mean - T_975_2DF * se) and gap["high"] == pytest.approx(mean + T_975_2DF * se)
    assert gap["beats_noise"] is True and gap["worse_beyond_noise"] is False
    # search-2 vs none over the 2 common seeds: differences 0.00 and -0.01, an interval across 0
    assert two["gaps"]["none"]["n"] == 2 and two["gaps"]["none"]["beats_noise"] is False
    assert table["conclusion"].startswith("Pattern 'search-1' beat no dropout by +0.1067")
    assert table["conclusion"].endswith("Best mean: pattern 'search-1' (0.82 over 3 seeds).")

    listed = api.client.get("/v1/searches", headers=api.auth()).json()["data"]
    assert listed[0]["validation"] == table
    plain = api.client.post(
        "/v1/searches",
        json={"model": {"name": "convnet"}, "dataset": {"name": "digits"}, "validation": {"enabled": False}},
        headers=api.auth(),
    ).json()
    assert plain["validation"] is None


def test_trials_carry_kind_arm_and_seed(sqlite_api: Api) -> None:
    api = sqlite_api
    sid, _ = validated_search(api)
    trials = all_json_trials(api, sid)
    assert len(trials) == 13
    search, runs = trials[:4], trials[4:]
    assert [(t["kind"], t["arm"], t["seed"]) for t in search] == [("search", None, None)] * 4
    expected = [("validation", arm, seed) for seed in SEEDS for arm in ("search-1", "search-2", "none")]
    assert [(t["kind"], t["arm"], t["seed"]) for t in runs] == expected
    assert [t["index"] for t in runs] == list(range(1_000_000, 1_000_009))
    assert [t["reward"] for t in runs] == [VALUES[arm][SEEDS.index(seed)] for _, arm, seed in expected]
    failed = next(t for t in runs if t["reward"] is None)
    assert failed["status"] == "failed" and (failed["arm"], failed["seed"]) == ("search-2", 10_001)

    text = api.client.get(f"/v1/searches/{sid}/trials", params={"format": "csv"}, headers=api.auth()).text
    header = next(csv.reader(io.StringIO(text)))
    assert header[:9] == ["index", "id", "status", "attempt", "kind", "arm", "seed", "variant", "tokens"]
    rows = check_csv_matches_json(text, trials)
    assert [(r["kind"], r["arm"], r["seed"]) for r in rows[:4]] == [("search", "", "")] * 4
    assert [(r["kind"], r["arm"], int(r["seed"])) for r in rows[4:]] == expected
    assert rows[4]["variant"] == "autodropout" and rows[6]["variant"] == "none"


def test_best_is_the_validated_arm_with_its_table(sqlite_api: Api) -> None:
    api = sqlite_api
    sid, arms = validated_search(api)
    document = api.client.get(f"/v1/searches/{sid}/best", headers=api.auth()).json()
    search = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()
    assert document["sites"] == arms[0].pattern["sites"] and document["variant"] == "autodropout"
    provenance = document["provenance"]
    assert provenance["validated"] is True and provenance["arm"] == "search-1"
    assert provenance["reward"] == pytest.approx(0.82) and provenance["search_reward"] == pytest.approx(0.9)
    trials = all_json_trials(api, sid)
    assert provenance["trial_id"] == trials[1]["id"]
    assert document["validation"] == search["validation"]


def _red_columns(pixels: Any) -> list[int]:
    """Image columns holding the chosen arm's colour (matplotlib's tab:red, #d62728)."""
    red = (abs(pixels[..., 0] - 0xD6 / 255) < 0.03) & (abs(pixels[..., 1] - 0x27 / 255) < 0.03)
    red &= abs(pixels[..., 2] - 0x28 / 255) < 0.03
    return sorted({int(c) for c in red.nonzero()[1]})


def test_plot_shows_the_validation_arms_beside_the_search(sqlite_api: Api) -> None:
    from matplotlib.image import imread

    from dropsearch.api.plots import reward_plot_png, validation_bars

    api = sqlite_api
    sid, _ = validated_search(api)
    response = api.client.get(f"/v1/searches/{sid}/plot.png", headers=api.auth())
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = imread(io.BytesIO(response.content), format="png")
    assert pixels.shape[:2] == (400, 700)
    columns = _red_columns(pixels)
    assert columns and min(columns) > 700 * 0.55  # the chosen arm's star is in the right-hand panel

    table = api.client.get(f"/v1/searches/{sid}", headers=api.auth()).json()["validation"]
    bars = validation_bars(table)
    assert [(b[0], b[4]) for b in bars] == [("search-1", "chosen"), ("search-2", "search"), ("none", "baseline")]
    name, mean, low, high, _ = bars[0]
    assert (mean, low, high) == pytest.approx((0.82, 0.80, 0.84))
    assert bars[1][1:4] == pytest.approx((0.71, 0.71 - statistics.stdev([0.70, 0.72]), 0.71 + 0.01 * math.sqrt(2)))

    # validation runs are never drawn as trials: the picture without the report is that of the search trials alone
    from dropsearch.store.db import session_scope
    from dropsearch.store.trials import list_trials

    with session_scope(api.engine, read_only=True) as session:
        every = list_trials(session=session, search_id=sid, limit=None).items
    search_only = [t for t in every if t.kind == "search"]
    assert len(every) == 13 and len(search_only) == 4
    assert reward_plot_png(every, title="t") == reward_plot_png(search_only, title="t")
    assert _red_columns(imread(io.BytesIO(reward_plot_png(every, title="t")), format="png")) == []


def test_validation_bars_skip_arms_without_results() -> None:
    from dropsearch.api.plots import validation_bars

    report = {
        "chosen": None,
        "arms": [
            {"name": "search-1", "origin": "search", "mean": None, "sd": None},
            {"name": "none", "origin": "baseline", "mean": 0.5, "sd": None},
        ],
    }
    assert validation_bars(report) == [("none", 0.5, 0.5, 0.5, "baseline")]
    assert validation_bars(None) == []
