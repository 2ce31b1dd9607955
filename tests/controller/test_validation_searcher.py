"""ValidationSearcher without Ray: rounds, racing, the result rule, resume and save/restore."""

import math

import pytest

from dropsearch.controller.validation_searcher import ValidationSearcher
from dropsearch.search.validation import Arm
from tests.controller._validation_trainable import QUALITY, observed

ray_search = pytest.importorskip("ray.tune.search")
FINISHED = ray_search.Searcher.FINISHED
SEEDS = [10000, 10001, 10002]
ARMS = [
    Arm(name, {"variant": "none" if name == "none" else "bernoulli"}, "baseline" if name == "none" else "search")
    for name in QUALITY
]


def drain(searcher, prefix="t"):
    """Hand out every config of the current round (until ``None`` or FINISHED)."""
    configs = {}
    while True:
        trial_id = f"{prefix}{searcher.n_suggested}"
        config = searcher.suggest(trial_id)
        if config is None or config == FINISHED:
            return configs, config
        configs[trial_id] = config


def complete(searcher, configs, value=observed):
    for trial_id, c in configs.items():
        searcher.on_trial_result(trial_id, {"val_accuracy": value(c["arm"], c["seed"]) - 0.1, "training_iteration": 1})
        searcher.on_trial_complete(trial_id, {"val_accuracy": value(c["arm"], c["seed"]), "training_iteration": 2})


def run(searcher):
    seen = []
    while True:
        configs, last = drain(searcher, prefix=f"r{len(seen)}-")
        seen.append(sorted((c["arm"], c["seed"]) for c in configs.values()))
        complete(searcher, configs)
        if last == FINISHED:
            return seen


def test_rounds_race_and_finish():
    searcher = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy")
    configs, last = drain(searcher)
    assert last is None  # round 1 handed out; waiting for it
    assert [(c["arm"], c["seed"]) for c in configs.values()] == [(a.name, s) for s in SEEDS[:2] for a in ARMS]
    first = next(iter(configs.values()))
    assert first == {
        "kind": "validation",
        "arm": "search-1",
        "pattern": ARMS[0].pattern,
        "seed": 10000,
        "validation_index": 0,
    }
    assert [c["validation_index"] for c in configs.values()] == [0, 3, 6, 9, 1, 4, 7, 10]
    complete(searcher, dict(list(configs.items())[:-1]))
    assert searcher.suggest("x") is None  # the round's last trial still runs
    complete(searcher, dict(list(configs.items())[-1:]))
    configs, last = drain(searcher, prefix="b")
    assert [(c["arm"], c["seed"]) for c in configs.values()] == [
        ("search-1", 10002),
        ("search-3", 10002),
        ("none", 10002),
    ]  # search-2 stopped by racing
    assert searcher.results.dropped == {"search-2": 2}
    complete(searcher, configs)
    assert searcher.suggest("z") == FINISHED and searcher.finished
    report = searcher.report().to_dict()
    assert report["chosen"] == "search-1" and report["metric"] == "val_accuracy"
    by_name = {a["name"]: a for a in report["arms"]}
    assert by_name["search-1"]["mean"] == pytest.approx(sum(observed("search-1", s) for s in SEEDS) / 3)
    assert by_name["search-2"]["n"] == 2 and by_name["search-2"]["stopped_early"]
    assert by_name["search-1"]["gaps"]["none"]["beats_noise"]  # +0.05 with the shared seed effect paired away


def test_without_racing_one_round_of_every_pair():
    searcher = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy", racing=False)
    rounds = run(searcher)
    assert len(rounds[0]) == 12 and searcher.results.dropped == {}


def test_mode_min_races_the_other_way():
    loss = ValidationSearcher(ARMS, SEEDS, "min", "val_accuracy")
    run(loss)
    assert set(loss.results.dropped) == {"search-1", "search-3"} and loss.report().chosen == "search-2"


def test_result_rule_last_k_failures_and_nan():
    searcher = ValidationSearcher(ARMS[:1] + ARMS[3:], SEEDS[:2], "max", "val_accuracy", last_k=2, racing=False)
    configs, _ = drain(searcher)
    ids = list(configs)
    for i, value in enumerate([0.5, 0.7]):
        searcher.on_trial_result(ids[0], {"val_accuracy": value, "training_iteration": i + 1})
    searcher.on_trial_complete(ids[0], {"val_accuracy": 0.7, "training_iteration": 2})  # the last result again
    searcher.on_trial_complete(ids[1], error=True)
    searcher.on_trial_result(ids[2], {"val_accuracy": math.nan, "training_iteration": 1})
    searcher.on_trial_complete(ids[2], {"val_accuracy": 0.9, "training_iteration": 2})  # NaN inside the window
    searcher.on_trial_complete(ids[3], {"other": 1.0})  # never reported the metric
    r = searcher.results
    assert r.results == {
        ("search-1", 10000): pytest.approx(0.6),
        ("none", 10000): None,
        ("search-1", 10001): None,
        ("none", 10001): None,
    }
    assert searcher.suggest("again") == FINISHED


def test_resume_with_completed_runs_nothing_finished_and_ends_the_same():
    straight = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy")
    run(straight)
    # a first run killed after 5 of round 1's trials finished
    first = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy")
    configs, _ = drain(first)
    complete(first, dict(list(configs.items())[:5]))
    done = [(a, s, v) for (a, s), v in first.results.results.items()]
    stored = []
    resumed = ValidationSearcher(
        ARMS,
        SEEDS,
        "max",
        "val_accuracy",
        completed=done,
        on_result=lambda c, v: stored.append((c["arm"], c["seed"], v)),
    )
    rounds = run(resumed)
    again = [pair for rnd in rounds for pair in rnd]
    assert not set(again) & {(a, s) for a, s, _ in done}
    assert len(again) + len(done) == 11 and len(stored) == len(again)
    assert resumed.report().to_dict() == straight.report().to_dict()
    # resumed after all of round 1 and part of round 2: racing decides on round 1 only, as before
    late = list(straight.results.results.items())[:9]
    resumed = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy", completed=[(a, s, v) for (a, s), v in late])
    run(resumed)
    assert resumed.results.dropped == straight.results.dropped
    assert resumed.report().to_dict() == straight.report().to_dict()


def test_save_and_restore_continue_exactly(tmp_path):
    searcher = ValidationSearcher(ARMS, SEEDS, "max", "val_accuracy")
    configs, _ = drain(searcher)
    complete(searcher, dict(list(configs.items())[:6]))
    searcher.save(str(tmp_path / "state.pkl"))
    restored = ValidationSearcher(ARMS, SEEDS)
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.get_state() == searcher.get_state()
    for s in (searcher, restored):
        complete(s, dict(list(configs.items())[6:]))
        run(s)
    assert restored.report().to_dict() == searcher.report().to_dict()


def test_metric_and_mode_from_tune_config_must_agree():
    searcher = ValidationSearcher(ARMS, 3)
    assert searcher.results.seeds == SEEDS
    searcher.set_search_properties("val_loss", "min", {})
    assert (searcher.metric, searcher.mode, searcher.results.mode) == ("val_loss", "min", "min")
    with pytest.raises(ValueError, match="differs"):
        ValidationSearcher(ARMS, 3, "max").set_search_properties(None, "min", {})
    with pytest.raises(ValueError, match="mode"):
        ValidationSearcher(ARMS, 3, "maximize")
    with pytest.raises(ValueError, match="last_k"):
        ValidationSearcher(ARMS, 3, last_k=0)
