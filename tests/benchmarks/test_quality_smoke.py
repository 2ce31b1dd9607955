"""The quality study (``python -m benchmarks.quality``): its statistics, its data split, and tiny end-to-end runs.

The MNIST-1D study (the default) at its tiny size submits a 4-trial search over HTTP to an in-process service and
re-trains and tests its patterns; the earlier digits study (``--study digits``) runs at its tiny size too.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.quality.data import load_quality_digits, load_quality_rotated  # noqa: E402
from benchmarks.quality.mnist1d_report import gap_rows, mnist1d_tables, winners_curse  # noqa: E402
from benchmarks.quality.stats import mean_sd, paired_gap, trials_to_threshold  # noqa: E402


def test_mean_sd_and_paired_gap_match_hand_computation():
    assert mean_sd([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    a = {"seeds": [0, 1, 2], "final": [0.70, 0.74, 0.69]}
    b = {"seeds": [2, 0, 1], "final": [0.66, 0.68, 0.70]}  # paired by seed, not by position
    g = paired_gap(a, b)
    gaps = [0.70 - 0.68, 0.74 - 0.70, 0.69 - 0.66]  # 0.02, 0.04, 0.03
    assert g["gap"] == pytest.approx(0.03)
    assert g["sd"] == pytest.approx(0.01)
    assert g["se"] == pytest.approx(0.01 / math.sqrt(3))
    assert g["beyond_noise"]  # 0.03 > 2 * 0.00577
    assert not paired_gap({"seeds": [0, 1], "final": [0.7, 0.6]}, {"seeds": [0, 1], "final": [0.6, 0.7]})[
        "beyond_noise"
    ]
    assert sum(gaps) / 3 == pytest.approx(g["gap"])


def test_trials_to_threshold_counts_in_index_order():
    trials = [{"index": 2, "reward": 0.9}, {"index": 0, "reward": 0.5}, {"index": 1, "reward": None}]
    assert trials_to_threshold(trials, 0.8) == 3
    assert trials_to_threshold(trials, 0.5) == 1
    assert trials_to_threshold(trials, 0.95) is None


@pytest.mark.parametrize("loader", [load_quality_digits, load_quality_rotated])
def test_search_and_final_halves_are_disjoint_balanced_and_fixed_by_data_seed(loader):
    a = loader(seed=0, size=8)
    b = loader(seed=5, size=8)  # the training seed does not move the data
    torch.testing.assert_close(a.x_val, b.x_val)
    x_final, y_final = a.test_domains["final"]
    assert abs(len(a.y_val) - len(y_final)) <= 10
    flat = lambda x: {tuple(row.tolist()) for row in x.flatten(1)}  # noqa: E731
    assert not flat(a.x_val) & flat(x_final)
    assert not flat(a.x_train) & flat(x_final)
    counts_search, counts_final = torch.bincount(a.y_val, minlength=10), torch.bincount(y_final, minlength=10)
    assert (counts_search - counts_final).abs().max() <= 2 * len(a.info.get("test_domains", [0]))
    c = loader(seed=0, size=8, data_seed=1)
    assert not torch.equal(c.y_val, a.y_val)


@pytest.mark.slow
@pytest.mark.drill
def test_tiny_study_runs_end_to_end_and_writes_every_output(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "benchmarks.quality", "--study", "digits", "--size", "tiny", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "quality.json").read_text())
    size = doc["size"]
    assert set(doc["datasets"]) == {"digits", "rotated"}
    for data in doc["datasets"].values():
        assert {"none", "gsnr", "ydrop", "gradaug", "largedrop-ft", "autodropout-hand"} <= set(data["baselines"])
        assert data["best_bernoulli"] in data["baselines"]
        for entry in data["baselines"].values():
            assert sorted(entry["seeds"]) == sorted(size["seeds"])
            assert all(0.0 <= v <= 1.0 for v in entry["val"] + entry["final"])
        for controller in ("reinforce", "random"):
            runs = data["searches"][controller]
            assert [r["seed"] for r in runs] == size["search_seeds"]
            for r in runs:
                assert len(r["trials"]) == size["trials"]
                assert r["child_epochs"] == size["trials"] * size["epochs"]  # early stopping off
                assert r["best_reward"] == max(t["reward"] for t in r["trials"])
        assert set(data["retrained"]) == {"found-reinforce", "found-random"}
        assert len(data["wider"]) == 3
    tables = (tmp_path / "tables.md").read_text()
    assert "larger than noise?" in tables and "trials to threshold" in tables
    for name in ("reward_vs_trials.png", "mask_rotated_reinforce.png", "mask_digits_random.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _entry(val, test, seeds=(0, 1, 2)):
    entry = {"pattern": {"variant": "bernoulli"}, "seeds": list(seeds), "val": val, "test": test}
    return {**entry, "wall_s": [1.0], "epochs": 60}


def test_mnist1d_gaps_and_winners_curse_match_hand_computation():
    doc = {
        "size": {"test_seeds": [0, 1, 2]},
        "best_grid": "bernoulli-0.3",
        "methods": {
            "none": _entry([0.60, 0.62, 0.61], [0.66, 0.67, 0.68]),
            "bernoulli-0.3": _entry([0.65, 0.66, 0.64], [0.70, 0.72, 0.71]),
            "validated-reinforce": _entry([0.64, 0.66, 0.65], [0.71, 0.70, 0.73], seeds=(2, 0, 1)),
            "top-reinforce": {"same_as": "none"},
        },
        "searches": {
            "reinforce": {
                "top": {"index": 5, "reward": 0.70, "pattern": {"variant": "none"}},
                "validation": {
                    "chosen": "search-1",
                    "arms": [
                        {
                            "name": "search-1",
                            "origin": "search",
                            "pattern": {"variant": "gsnr"},
                            "n": 3,
                            "mean": 0.68,
                            "sd": 0.01,
                            "search_reward": 0.69,
                            "gaps": {},
                        }
                    ],
                },
                "trials": [],
                "validation_runs": [],
                "child_epochs": 0,
                "wall_s": 60.0,
            }
        },
    }
    rows = {(r["a"], r["b"]): r for r in gap_rows(doc)}
    # validated is paired by seed: seeds (2, 0, 1) -> test per seed 0: 0.70, 1: 0.73, 2: 0.71
    g = rows[("validated-reinforce", "none")]
    gaps = [0.70 - 0.66, 0.73 - 0.67, 0.71 - 0.68]  # 0.04, 0.06, 0.03
    assert g["gap"] == pytest.approx(sum(gaps) / 3)
    sd = math.sqrt(sum((x - sum(gaps) / 3) ** 2 for x in gaps) / 2)
    assert g["se"] == pytest.approx(sd / math.sqrt(3))
    assert g["better"] and not g["worse"]  # 0.0433 > 2 * 0.0088
    assert rows[("top-reinforce", "none")]["same"]  # an alias of the same pattern: gap 0 by construction
    assert not rows[("validated-reinforce", "bernoulli-0.3")]["better"]
    curse = {(r["pattern"], r["selection"]): r["curse"] for r in winners_curse(doc)}
    assert curse[("raw top search trial", "search reward (1 child)")] == pytest.approx(0.70 - 0.61)
    assert curse[("validated arm `search-1`", "validation-stage mean (3 seeds)")] == pytest.approx(0.68 - 0.65)
    assert curse[("validated arm `search-1`", "its search reward (1 child)")] == pytest.approx(0.69 - 0.65)
    tables = mnist1d_tables({**doc, "split": {}, "phases": {}, "wall_s": 60.0})
    assert "| validated-reinforce − none | +4.33 |" in tables and "better beyond noise" in tables


@pytest.mark.slow
@pytest.mark.drill
def test_tiny_mnist1d_study_goes_through_the_service_and_tests_every_method(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "benchmarks.quality", "--size", "tiny", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "mnist1d.json").read_text())
    size = doc["size"]
    assert doc["split"] == {"train": 400, "validation": 800, "test": 1000, "split_seed": size["search_seed"]}
    run = doc["searches"]["reinforce"]
    assert run["status"] == "succeeded" and len(run["trials"]) == size["trials"]
    assert all(t["index"] >= 1_000_000 for t in run["validation_runs"]) and run["validation_runs"]
    assert run["top"]["reward"] == max(t["reward"] for t in run["trials"] if t["reward"] is not None)
    best = run["best"]
    assert best["provenance"]["validated"] is True and best["validation"]["chosen"] == best["provenance"]["arm"]
    expected = {"none", "validated-reinforce", "top-reinforce"} | {f"bernoulli-{r:g}" for r in size["grid"]}
    assert set(doc["methods"]) == expected and doc["best_grid"] in expected
    for entry in doc["methods"].values():
        if "same_as" in entry:
            assert entry["same_as"] in doc["methods"]
            continue
        assert entry["seeds"] == size["test_seeds"] and entry["epochs"] == size["epochs"]
        assert all(0.0 <= v <= 1.0 for v in entry["val"] + entry["test"])
    tables = (tmp_path / "mnist1d_tables.md").read_text()
    assert "Paired gaps on test accuracy" in tables and "Winner's curse" in tables


def test_reusable_baselines_only_from_a_run_with_the_same_child_split_and_seeds():
    import dataclasses

    from benchmarks.quality.mnist1d import MNIST1D_SIZES, reusable_baselines

    size = MNIST1D_SIZES["tiny"]
    earlier = {
        "size": json.loads(json.dumps(size.to_dict())),
        "methods": {"none": {"a": 1}, "bernoulli-0.1": {"b": 2}, "bernoulli-0.5": {"c": 3}, "validated-x": {}},
    }
    assert reusable_baselines(size, earlier) == {
        k: earlier["methods"][k] for k in ("none", "bernoulli-0.1", "bernoulli-0.5")
    }
    # the searches may differ (scheduler, controllers) ...
    assert reusable_baselines(dataclasses.replace(size, early_stopping="none", trials=9), earlier)
    # ... but not the children or their seeds
    with pytest.raises(ValueError, match="test_seeds differs"):
        reusable_baselines(dataclasses.replace(size, test_seeds=(1, 2)), earlier)
