"""Acceptance check of the validation stage on simulated searches (``benchmarks/validation_sim.py``, fixed seed)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "validation_sim.py"


def _load():
    spec = importlib.util.spec_from_file_location("validation_sim", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validated_choice_beats_the_raw_top_reward_by_a_clear_margin(capsys):
    report = _load().main(["--searches", "50", "--seed", "0", "--skip-best"])["validation"]
    assert '"validation"' in capsys.readouterr().out  # prints its JSON
    validated = report["validated_picks_true_best_of_validated"]
    raw = report["raw_top_reward_picks_true_best_of_validated"]
    assert validated >= raw + 0.15, report  # measured: 0.66 against 0.46
    loss = report["true_quality_lost_vs_best_validated"]
    assert loss["validated"] < 0.5 * loss["raw"], report
    assert report["validation_runs_mean"] <= report["validation_runs_max"] == 12


def test_best_ranks_by_a_noise_aware_estimate_on_synthetic_rewards():
    module = _load()
    args = module.argparse.Namespace(seed=0, best_reps=20, best_samples=160)
    report = module.best_part(args)
    reinforce = report["reinforce"]
    before = reinforce["true_quality_lost_before_(observed_mean)"]
    after = reinforce["true_quality_lost_after_(shrunk_estimate)"]
    assert after < before, report
