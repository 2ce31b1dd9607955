"""A real Ray Tune run on local Ray driven by ValidationSearcher (slow: starts Ray)."""

import pytest

from dropsearch.controller.validation_searcher import ValidationSearcher
from dropsearch.search.validation import Arm
from tests.controller._validation_trainable import QUALITY, observed, trainable

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]
SEEDS = [10000, 10001, 10002]
ARMS = [
    Arm(name, {"variant": "none" if name == "none" else "bernoulli"}, "baseline" if name == "none" else "search")
    for name in QUALITY
]


def _fit(tmp_path, searcher, name):
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, metric="val_accuracy", mode="max", num_samples=12, max_concurrent_trials=2
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    )
    return tuner.fit()


def test_tune_runs_the_rounds_races_and_reports(tmp_path):
    searcher = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy")
    results = _fit(tmp_path, searcher, "validation")
    assert results.num_errors == 0
    ran = sorted((r.config["arm"], r.config["seed"]) for r in results)
    expected = sorted([(a.name, s) for a in ARMS for s in SEEDS if (a.name, s) != ("search-2", 10002)])
    assert ran == expected  # 11 trials: search-2 was stopped after round 1
    for r in results:
        assert r.metrics["val_accuracy"] == pytest.approx(observed(r.config["arm"], r.config["seed"]))
    report = searcher.report().to_dict()
    assert report["chosen"] == "search-1" and report["chosen_beats"] == {"none": True}
    assert {a["name"]: a["n"] for a in report["arms"]} == {"search-1": 3, "search-2": 2, "search-3": 3, "none": 3}


def test_a_resumed_stage_trains_nothing_already_finished(tmp_path):
    done = [(a.name, s, observed(a.name, s)) for a in ARMS for s in SEEDS[:1]] + [("search-1", 10001, None)]
    searcher = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy", completed=done)
    results = _fit(tmp_path, searcher, "resumed")
    ran = sorted((r.config["arm"], r.config["seed"]) for r in results)
    assert ran == sorted(
        [("search-2", 10001), ("search-3", 10001), ("none", 10001)]
        + [(a, 10002) for a in ("search-1", "search-3", "none")]
    )
    report = searcher.report().to_dict()
    assert report["arms"][0]["failed_seeds"] == [10001] and report["arms"][1]["stopped_early"]
    assert report["chosen"] == "search-1"  # 2 results (10000, 10002), the best mean
