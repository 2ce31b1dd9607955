"""The validation stage's arms, paired statistics, racing and report (hand-computed numbers)."""

import json
import math

import pytest

from dropsearch.regularizers.pattern import Pattern, Site
from dropsearch.search.stats import t_quantile
from dropsearch.search.validation import (
    Arm,
    ValidationResults,
    baseline_arms,
    baseline_pattern,
    make_arms,
    pattern_key,
    select_top,
    validation_seeds,
)

SITES = (Site("features.drop1", "conv", 16), Site("features.drop2", "conv", 32), Site("head.drop", "features", 64))
SEEDS = [10000, 10001, 10002]


def bern(rate):
    return {"variant": "bernoulli", "sites": [{"site": "features.drop1", "rate": rate}]}


def results(values, mode="max", baselines=("none",)):
    """ValidationResults from {arm: [value per seed]}; arms named in ``baselines`` are baselines."""
    arms = [
        Arm(
            name, {"variant": "none"} if name in baselines else bern(0.1), "baseline" if name in baselines else "search"
        )
        for name in values
    ]
    out = ValidationResults(arms, list(SEEDS), mode)
    for name, vals in values.items():
        for seed, v in zip(out.seeds, vals, strict=False):
            out.record(name, seed, v)
    return out


def test_baseline_patterns_expand_against_the_sites():
    assert baseline_pattern({"variant": "none"}, SITES)["sites"] == []
    p = baseline_pattern({"variant": "bernoulli", "rate": 0.3}, SITES)
    assert [(s["site"], s["rate"]) for s in p["sites"]] == [(s.name, 0.3) for s in SITES]
    assert p["provenance"] == {"baseline": "bernoulli-0.3"}
    spatial = baseline_pattern({"variant": "spatial", "rate": 0.1}, SITES)
    assert [s["site"] for s in spatial["sites"]] == ["features.drop1", "features.drop2"]  # conv sites only
    block = baseline_pattern({"variant": "dropblock", "rate": 0.1, "shape": {"block_size": 3}}, SITES)
    assert all(s["shape"] == {"block_size": 3} for s in block["sites"])
    Pattern.from_dict(block)  # a valid pattern document
    with pytest.raises(ValueError, match="no site"):
        baseline_pattern({"variant": "spatial", "rate": 0.1}, (Site("fc", "linear", 8),))
    arms = baseline_arms([{"variant": "none"}, {"variant": "bernoulli", "rate": 0.3, "name": "plain"}], SITES)
    assert [(a.name, a.origin) for a in arms] == [("none", "baseline"), ("plain", "baseline")]


def test_select_top_takes_distinct_patterns_in_the_objectives_direction():
    trials = [
        (bern(0.1), 0.50, 0),
        (bern(0.2), 0.70, 1),
        ({**bern(0.1), "provenance": {"trial": 2}}, 0.80, 2),  # same pattern as trial 0, found again
        ({"variant": "none"}, 0.90, 3),  # equals the baseline: validated once, as the baseline
        (bern(0.3), None, 4),  # failed
        (bern(0.4), math.nan, 5),  # diverged
        (bern(0.3), 0.60, 6),
    ]
    top = select_top(trials, 2, "max", exclude=[{"variant": "none"}])
    assert [(a.name, a.search_reward, a.trial_index) for a in top] == [("search-1", 0.8, 2), ("search-2", 0.7, 1)]
    low = select_top(trials, 3, "min")
    assert [a.trial_index for a in low] == [0, 6, 1]  # bern(0.1) counts with its best (lowest) reward 0.50
    arms = make_arms(trials, [{"variant": "none"}], SITES, top_k=3, mode="max")
    assert [a.name for a in arms] == ["search-1", "search-2", "search-3", "none"]
    assert pattern_key({"variant": "none", "sites": [{"site": "x", "rate": 0.2}]}) == pattern_key({"variant": "none"})


def test_a_site_variant_at_rate_zero_everywhere_is_the_no_dropout_arm():
    none = pattern_key({"variant": "none"})
    zeros = [{"site": "a", "rate": 0.0}, {"site": "b", "rate": 0.0, "shape": {"block_size": 3}}]
    assert pattern_key({"variant": "bernoulli", "sites": zeros}) == none
    assert pattern_key({"variant": "dropblock", "sites": zeros, "params": {"block_size": 3}}) == none
    one_on = [{"site": "a", "rate": 0.0}, {"site": "b", "rate": 0.1}]
    assert pattern_key({"variant": "bernoulli", "sites": one_on}) != none
    # Y-Drop changes the step (conductance refreshes) and GSNR is model-wide: never merged with no dropout
    assert pattern_key({"variant": "ydrop", "sites": zeros, "params": {"scale": 0.5}}) != none
    assert pattern_key({"variant": "gsnr", "params": {"p": 0.0}}) != none
    trials = [({"variant": "bernoulli", "sites": zeros}, 0.9, 0), ({"variant": "bernoulli", "sites": one_on}, 0.8, 1)]
    top = select_top(trials, 2, "max", exclude=[{"variant": "none"}])
    assert [a.trial_index for a in top] == [1]  # the rate-0 trial is the "none" baseline already


def test_validation_seeds_are_fresh():
    assert validation_seeds(7, 3) == [10007, 10008, 10009]


def test_per_arm_statistics_and_paired_gaps_by_hand():
    r = results({"search-1": [0.61, 0.55, 0.58], "none": [0.60, 0.50, 0.56]})
    s = r.summary("search-1")
    assert s.n == 3 and s.mean == pytest.approx(0.58) and s.sd == pytest.approx(0.03)
    g = r.gap("search-1", "none")
    diffs = [0.01, 0.05, 0.02]
    se = math.sqrt(sum((d - 0.08 / 3) ** 2 for d in diffs) / 2) / math.sqrt(3)
    assert g.mean == pytest.approx(0.08 / 3) and g.se == pytest.approx(se)
    assert g.low == pytest.approx(0.08 / 3 - t_quantile(0.975, 2) * se)
    assert not r.better(g)  # the interval includes 0
    assert r.best() == "search-1"


def test_direction_of_beats_noise_follows_the_mode():
    values = {"search-1": [0.40, 0.42, 0.41], "none": [0.50, 0.52, 0.50]}  # lower: a loss
    as_loss = results(values, mode="min")
    gap = as_loss.gap("search-1", "none")
    assert as_loss.better(gap) and not as_loss.worse(gap) and as_loss.best() == "search-1"
    as_accuracy = results(values, mode="max")
    assert as_accuracy.worse(as_accuracy.gap("search-1", "none")) and as_accuracy.best() == "none"


def test_racing_stops_arms_worse_than_the_leader_but_never_a_baseline():
    r = results(
        {
            "search-1": [0.60, 0.62],
            "search-2": [0.30, 0.325],  # far below the leader at both seeds: stopped
            "search-3": [0.59, 0.63],  # within noise: kept
            "none": [0.20, 0.21],  # a baseline far below: kept
        }
    )
    assert r.race() == ["search-2"]
    assert r.dropped == {"search-2": 2} and r.race() == []
    r.record("search-2", SEEDS[2], 0.99)  # a stopped arm is never chosen, even with a late lucky seed
    assert r.best() in ("search-1", "search-3")


def test_racing_needs_two_paired_seeds():
    r = results({"search-1": [0.9], "search-2": [0.1], "none": [0.5]})
    assert r.race() == []


def test_failed_runs_are_left_out_and_pairs_use_common_seeds():
    r = results({"search-1": [0.6, None, 0.7], "none": [0.5, 0.55, 0.6]})
    assert r.failed_seeds("search-1") == [SEEDS[1]] and r.summary("search-1").n == 2
    g = r.gap("search-1", "none")
    assert g.n == 2 and g.mean == pytest.approx(0.1)
    r.record("none", SEEDS[0], math.nan)
    assert r.failed_seeds("none") == [SEEDS[0]]
    with pytest.raises(ValueError, match="not one of the validation seeds"):
        r.record("none", 5, 0.1)
    with pytest.raises(KeyError, match="unknown arm"):
        r.record("search-9", SEEDS[0], 0.1)


def test_report_is_json_and_says_when_nothing_beats_no_dropout():
    r = results({"search-1": [0.61, 0.55, 0.58], "search-2": [0.50, 0.49, 0.52], "none": [0.60, 0.50, 0.56]})
    d = r.report(metric="val_accuracy").to_dict()
    json.dumps(d, allow_nan=False)
    assert d["chosen"] == "search-1" and d["mode"] == "max" and d["seeds"] == SEEDS
    one = d["arms"][0]
    assert one["n"] == 3 and one["mean"] == pytest.approx(0.58) and one["search_reward"] is None
    assert one["results"] == [{"seed": s, "value": v} for s, v in zip(SEEDS, [0.61, 0.55, 0.58], strict=True)]
    assert set(one["gaps"]) == {"none"} and one["gaps"]["none"]["beats_noise"] is False
    assert d["arms"][2]["gaps"] == {}  # a baseline has no gap to itself
    assert d["chosen_beats"] == {"none": False}
    assert "No pattern beat no dropout beyond noise (paired 95% interval)." in d["conclusion"]
    assert "Best mean: pattern 'search-1'" in d["conclusion"]


def test_report_names_the_winner_with_its_interval():
    r = results({"search-1": [0.62, 0.56, 0.60], "none": [0.60, 0.53, 0.57]})  # +0.02, +0.03, +0.03
    d = r.report().to_dict()
    gap = d["arms"][0]["gaps"]["none"]
    assert gap["beats_noise"] and gap["low"] > 0 and d["chosen_beats"] == {"none": True}
    assert d["conclusion"].startswith("Pattern 'search-1' beat no dropout by +0.02667 (paired 95% interval +0.")


def test_state_round_trips_through_json():
    r = results({"search-1": [0.60, 0.62], "search-2": [0.30, 0.325], "none": [0.2, None]})
    r.race()
    back = ValidationResults.from_state(json.loads(json.dumps(r.state_dict())))
    assert back.results == r.results and back.dropped == r.dropped and back.arms == r.arms
    assert back.report().to_dict() == r.report().to_dict()


def test_bad_arms_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        ValidationResults([Arm("a", {}, "search"), Arm("a", {}, "baseline")], SEEDS, "max")
    with pytest.raises(ValueError, match="origin"):
        Arm("a", {}, "lucky")
    with pytest.raises(ValueError, match="mode"):
        ValidationResults([Arm("a", {}, "search")], SEEDS, "maximize")


def test_an_arm_with_one_result_cannot_lead_the_race():
    r = results({"search-1": [0.9, None], "search-2": [0.30, 0.32], "search-3": [0.60, 0.62], "none": [0.5, 0.52]})
    assert r.race() == ["search-2"]  # raced against search-3, not against search-1's single lucky seed
    assert r.best() == "search-3"  # nor be chosen while other arms have two or more results
    assert r.best(min_results=1) == "search-1"
